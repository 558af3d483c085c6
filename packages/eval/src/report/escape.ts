/** Text and attribute values for HTML: & < > " ' become entities. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** One Markdown table cell: no line breaks, no table pipes, no raw HTML. */
export function escapeMarkdownCell(value: unknown): string {
  return String(value)
    .replace(/\r?\n/g, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/([\\|`*_[\]])/g, '\\$1');
}

/** Markdown inline text outside tables. */
export function escapeMarkdown(value: unknown): string {
  return escapeMarkdownCell(value).replace(/^([#>+-])/, '\\$1');
}
