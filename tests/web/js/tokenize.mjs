// node tokenize.mjs TOKENIZER_JSON CAPTIONS_JSON MAX_LENGTH: prints each caption's encoding as JSON lines.
import { readFileSync } from "node:fs";
import { WordPieceTokenizer } from "../../../imagen/web/static/tokenizer.js";

const [spec, captions, maxLength] = process.argv.slice(2);
const tokenizer = new WordPieceTokenizer(JSON.parse(readFileSync(spec, "utf8")));
for (const caption of JSON.parse(readFileSync(captions, "utf8"))) {
  const { inputIds, attentionMask, truncated } = tokenizer.encode(caption, Number(maxLength));
  console.log(JSON.stringify({ ids: tokenizer.tokenize(caption), inputIds, attentionMask, truncated }));
}
