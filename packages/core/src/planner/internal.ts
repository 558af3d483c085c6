/** Number formatting for `detail` strings: `8,030,261,248`. Internal to the planner. */
export const n = (x: number): string => Math.round(x).toLocaleString('en-US');
