// node styles.mjs CASES_JSON: for each [prompt, style, styles] prints [withStyle, restyle] as a JSON line.
import { readFileSync } from "node:fs";
import { restyle, withStyle } from "../../../imagen/web/static/styles.js";

for (const [prompt, style, styles] of JSON.parse(readFileSync(process.argv[2], "utf8"))) {
  console.log(JSON.stringify([withStyle(prompt, style, styles), restyle(prompt, style, styles)]));
}
