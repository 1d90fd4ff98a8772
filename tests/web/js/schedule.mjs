// node schedule.mjs ALPHA_BAR_JSON: prints the page's curve and SVG (visited steps 999 and 500, current 500).
import { readFileSync } from "node:fs";
import { noiseLevel, scheduleCurve, scheduleSvg } from "../../../imagen/web/static/schedule_plot.js";

const alphaBar = JSON.parse(readFileSync(process.argv[2], "utf8"));
const visit = (t, index) => ({ t, sigma: noiseLevel(alphaBar, t), index });
const curve = scheduleCurve(alphaBar);
console.log(JSON.stringify({ curve, svg: scheduleSvg(curve, [visit(999, 0), visit(500, 1)], visit(500, 1), "Base stage (64 px)") }));
