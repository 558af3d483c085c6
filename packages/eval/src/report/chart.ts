import type { CurvePoint } from '../readers.ts';
import { escapeHtml } from './escape.ts';

export interface ChartSeries {
  /** Class suffix and legend text, e.g. `train` / "training loss". */
  readonly id: string;
  readonly label: string;
  readonly color: string;
  readonly points: readonly CurvePoint[];
  readonly dashed?: boolean;
}

export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  /** Right end of the x axis (e.g. total steps). @default the largest x */
  readonly xMax?: number;
  readonly width?: number;
  readonly height?: number;
}

/** Tick values at 1/2/5 × 10^k covering [min, max] with about `count` ticks. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  // The 1/2/5 step whose tick count is closest to the one asked for.
  const step = [1, 2, 5, 10]
    .map((m) => m * power)
    .reduce((best, s) => (Math.abs((max - min) / s - count) < Math.abs((max - min) / best - count) ? s : best));
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const round = (v: number) => Number(v.toFixed(2));

/**
 * A line chart as inline SVG: axes with ticks and labels, one path plus one circle per point for
 * each series, and a legend. Each path carries `data-series` and `data-points` for tests and tools.
 */
export function lineChartSvg(series: readonly ChartSeries[], options: ChartOptions): string {
  const width = options.width ?? 760;
  const height = options.height ?? 340;
  const m = { top: 36, right: 24, bottom: 52, left: 64 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const all = series.flatMap((s) => s.points);
  const xMax = Math.max(options.xMax ?? 0, ...all.map((p) => p.step), 1);
  const yValues = all.map((p) => p.value);
  let yMin = yValues.length ? Math.min(...yValues) : 0;
  let yMax = yValues.length ? Math.max(...yValues) : 1;
  const pad = (yMax - yMin || Math.abs(yMax) || 1) * 0.08;
  yMin = Math.max(0, yMin - pad);
  yMax += pad;
  const yTicks = niceTicks(yMin, yMax, 5);
  yMin = Math.min(yMin, yTicks[0] ?? yMin);
  const xTicks = niceTicks(0, xMax, 6);
  const x = (step: number) => round(m.left + (step / xMax) * plotW);
  const y = (value: number) => round(m.top + plotH - ((value - yMin) / (yMax - yMin)) * plotH);

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(options.title)}">`,
    `<title>${escapeHtml(options.title)}</title>`,
    `<text class="chart-title" x="${m.left}" y="20">${escapeHtml(options.title)}</text>`,
  );
  // grid and ticks
  for (const t of yTicks) {
    parts.push(
      `<line class="grid" x1="${m.left}" x2="${m.left + plotW}" y1="${y(t)}" y2="${y(t)}"/>`,
      `<text class="tick y-tick" x="${m.left - 8}" y="${y(t) + 4}" text-anchor="end">${escapeHtml(t)}</text>`,
    );
  }
  for (const t of xTicks) {
    parts.push(
      `<line class="tick-mark" x1="${x(t)}" x2="${x(t)}" y1="${m.top + plotH}" y2="${m.top + plotH + 5}"/>`,
      `<text class="tick x-tick" x="${x(t)}" y="${m.top + plotH + 18}" text-anchor="middle">${escapeHtml(t)}</text>`,
    );
  }
  parts.push(
    `<line class="axis x-axis" x1="${m.left}" x2="${m.left + plotW}" y1="${m.top + plotH}" y2="${m.top + plotH}"/>`,
    `<line class="axis y-axis" x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + plotH}"/>`,
    `<text class="axis-label" x="${m.left + plotW / 2}" y="${height - 12}" text-anchor="middle">${escapeHtml(options.xLabel)}</text>`,
    `<text class="axis-label" transform="translate(16 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(options.yLabel)}</text>`,
  );
  // series
  series.forEach((s, index) => {
    if (s.points.length > 0) {
      const d = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.step)} ${y(p.value)}`).join(' ');
      parts.push(
        `<path class="series series-${escapeHtml(s.id)}" data-series="${escapeHtml(s.id)}" data-points="${s.points.length}" d="${d}" fill="none" stroke="${escapeHtml(s.color)}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
        `<g class="points points-${escapeHtml(s.id)}" fill="${escapeHtml(s.color)}">`,
        ...s.points.map(
          (p) =>
            `<circle cx="${x(p.step)}" cy="${y(p.value)}" r="${s.dashed ? 4 : 2.5}"><title>${escapeHtml(`${s.label} at step ${p.step}: ${p.value}`)}</title></circle>`,
        ),
        '</g>',
      );
    }
    const lx = m.left + plotW - 170;
    const ly = m.top + 8 + index * 18;
    parts.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${escapeHtml(s.color)}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
      `<text class="legend" x="${lx + 28}" y="${ly + 4}">${escapeHtml(`${s.label} (${s.points.length})`)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}
