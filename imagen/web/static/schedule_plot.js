// The noise schedule as the server's page draws it (imagen/web/live_view.py, schedule_svg): the noise
// level sigma = sqrt(1 - alpha_bar_t) against the timestep t (T on the left, 0 on the right, the
// direction sampling goes), the timesteps this run visits as dots, the current one as a larger marker.

const [W, H, PAD, TOP] = [240, 110, 22, 16]; // SVG units, as live_view.PLOT_W, PLOT_H, PAD, TOP
const POINTS = 64; // points of the curve, as live_view.SCHEDULE_POINTS

/** sigma_t of a stage's schedule (its alpha_bar list, from the export's schedule_<stage>.json). */
export const noiseLevel = (alphaBar, t) => Math.sqrt(Math.max(0, 1 - alphaBar[t]));

/** (t, sigma) along the schedule, from t = T - 1 down to 0. */
export function scheduleCurve(alphaBar, points = POINTS) {
  const last = alphaBar.length - 1;
  const ts = [...new Set(Array.from({ length: points }, (_, k) => Math.round((last * k) / (points - 1))))];
  return ts.sort((a, b) => b - a).map((t) => [t, noiseLevel(alphaBar, t)]);
}

/** The plot as SVG text. visited: [{t, sigma}] of the run so far; current: {t, sigma, index} or null. */
export function scheduleSvg(curve, visited, current, title) {
  if (!curve.length) return "";
  const tMax = Math.max(...curve.map(([t]) => t)) || 1;
  const x = (t) => (PAD + (1 - t / tMax) * (W - PAD - 6)).toFixed(1);
  const y = (s) => (TOP + (1 - s) * (H - PAD - TOP)).toFixed(1);
  const line = curve.map(([t, s]) => `${x(t)},${y(s)}`).join(" ");
  const dots = visited.map((v) => `<circle cx="${x(v.t)}" cy="${y(v.sigma)}" r="2.2" class="visited"/>`).join("");
  const marker = current ? `<line x1="${x(current.t)}" x2="${x(current.t)}" y1="${TOP}" y2="${(H - PAD).toFixed(1)}" `
    + `class="now-line"/><circle cx="${x(current.t)}" cy="${y(current.sigma)}" r="5" class="now" `
    + `data-step="${current.index}" data-timestep="${current.t}"/>` : "";
  const axisY = H - PAD;
  return `<svg class="schedule" viewBox="0 0 ${W} ${H}" role="img" aria-label="noise level against timestep, ${title}">`
    + `<text x="${PAD}" y="${H - 4}" class="axis">t = ${tMax}</text>`
    + `<text x="${W - 6}" y="${H - 4}" class="axis" text-anchor="end">t = 0</text>`
    + `<text x="2" y="${TOP + 3}" class="axis">σ=1</text><text x="2" y="${axisY}" class="axis">0</text>`
    + `<line x1="${PAD}" y1="${axisY}" x2="${W - 6}" y2="${axisY}" class="frame"/>`
    + `<line x1="${PAD}" y1="${TOP}" x2="${PAD}" y2="${axisY}" class="frame"/>`
    + `<polyline points="${line}" class="curve"/>${dots}${marker}`
    + `<text x="${W / 2}" y="10" class="title" text-anchor="middle">noise level σ, ${title}</text></svg>`;
}
