/** RFC 1123 label: what Kubernetes requires of most object names and label values we derive. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_LABEL_MAX = 63;

export function isDnsLabel(name: string): boolean {
  return name.length <= DNS_LABEL_MAX && DNS_LABEL.test(name);
}

/** A suggestion for a string that is not a DNS label: lower-cased, other characters to `-`. */
export function toDnsLabel(name: string): string {
  const cleaned = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .replace(/-{2,}/g, '-');
  return cleaned.slice(0, DNS_LABEL_MAX).replace(/-+$/, '') || 'x';
}

/** Kubernetes label values: up to 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends. */
export function isLabelValue(value: string): boolean {
  return value === '' || (value.length <= 63 && /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(value));
}
