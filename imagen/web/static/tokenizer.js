// A BERT WordPiece tokenizer for the browser, read from the exported tokenizer.json (the Hugging Face
// `tokenizers` format): what AutoTokenizer does for the text encoder (all-MiniLM-L6-v2, uncased), in
// a page with no build step and no dependency. Covers BertNormalizer, BertPreTokenizer, WordPiece,
// the [CLS] ... [SEP] template, truncation and padding to a fixed length; anything else is refused
// rather than tokenized differently. tests/web/test_tokenizer_js.py compares it with AutoTokenizer.

const WHITESPACE = /\p{White_Space}/u;
const OTHER = /\p{C}/u; // Unicode's "other" categories: control, format, surrogate, private use, unassigned
const NONSPACING_MARK = /\p{Mn}/u;
const PUNCTUATION = /\p{P}/u;

function isAsciiPunctuation(cp) {
  return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
}

function isChineseChar(cp) { // the CJK Unified Ideographs blocks, as BERT defines them
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df)
    || (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf)
    || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

function isWhitespace(ch) {
  return ch === "\t" || ch === "\n" || ch === "\r" || WHITESPACE.test(ch);
}

/** BertNormalizer: drop control characters, whitespace to spaces, space around CJK, strip accents, lowercase. */
function normalize(text, { clean_text: clean, handle_chinese_chars: chinese, strip_accents: strip, lowercase }) {
  let out = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (clean) {
      if (cp === 0 || cp === 0xfffd || (!isWhitespace(ch) && OTHER.test(ch))) continue;
      if (isWhitespace(ch)) { out += " "; continue; }
    }
    out += chinese && isChineseChar(cp) ? ` ${ch} ` : ch;
  }
  if (strip ?? lowercase) out = Array.from(out.normalize("NFD")).filter((ch) => !NONSPACING_MARK.test(ch)).join("");
  return lowercase ? out.toLowerCase() : out;
}

/** BertPreTokenizer: split on whitespace (dropped) and around each punctuation character (kept). */
function preTokenize(text) {
  const words = [];
  let word = "";
  for (const ch of text) {
    if (isWhitespace(ch)) {
      if (word) words.push(word);
      word = "";
    } else if (isAsciiPunctuation(ch.codePointAt(0)) || PUNCTUATION.test(ch)) {
      if (word) words.push(word);
      words.push(ch);
      word = "";
    } else {
      word += ch;
    }
  }
  if (word) words.push(word);
  return words;
}

export class WordPieceTokenizer {
  /** `spec`: the parsed tokenizer.json. */
  constructor(spec) {
    const model = spec.model ?? {};
    if (model.type !== "WordPiece" || spec.normalizer?.type !== "BertNormalizer"
        || spec.pre_tokenizer?.type !== "BertPreTokenizer") {
      throw new Error("this tokenizer reads BERT WordPiece tokenizers only (BertNormalizer, BertPreTokenizer, "
                      + "WordPiece); run this text encoder on the server");
    }
    this.vocab = new Map(Object.entries(model.vocab));
    this.unk = this.vocab.get(model.unk_token);
    this.prefix = model.continuing_subword_prefix ?? "##";
    this.maxChars = model.max_input_chars_per_word ?? 100;
    this.normalizer = spec.normalizer;
    this.cls = this.vocab.get("[CLS]");
    this.sep = this.vocab.get("[SEP]");
    this.pad = spec.padding?.pad_id ?? this.vocab.get("[PAD]") ?? 0;
    // Added tokens typed literally ("[MASK]") are matched in the raw text, longest first, as tokenizers does.
    const added = (spec.added_tokens ?? []).filter((t) => !t.normalized).sort((a, b) => b.content.length - a.content.length);
    this.added = new Map(added.map((t) => [t.content, t.id]));
    const escaped = added.map((t) => t.content.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    this.addedPattern = escaped.length ? new RegExp(`(${escaped.join("|")})`) : null;
  }

  wordPiece(word) {
    const chars = Array.from(word);
    if (chars.length > this.maxChars) return [this.unk];
    const ids = [];
    for (let start = 0; start < chars.length;) {
      let end = chars.length, id;
      for (; end > start; end--) { // the longest piece in the vocabulary, greedily
        const piece = (start > 0 ? this.prefix : "") + chars.slice(start, end).join("");
        if ((id = this.vocab.get(piece)) !== undefined) break;
      }
      if (end === start) return [this.unk]; // one unknown piece makes the whole word unknown
      ids.push(id);
      start = end;
    }
    return ids;
  }

  /** The token ids of `text`, without the special tokens and untruncated. */
  tokenize(text) {
    const parts = this.addedPattern ? text.split(this.addedPattern) : [text];
    const ids = [];
    parts.forEach((part, i) => {
      if (i % 2 === 1) { ids.push(this.added.get(part)); return; } // a captured added token
      for (const word of preTokenize(normalize(part, this.normalizer))) ids.push(...this.wordPiece(word));
    });
    return ids;
  }

  /** As tokenizer(text, padding="max_length", truncation=True, max_length): [CLS] ids [SEP] [PAD]...
   * Returns {inputIds, attentionMask} (plain arrays of maxLength numbers) and whether text was cut. */
  encode(text, maxLength) {
    const ids = this.tokenize(text);
    const room = maxLength - 2;
    const kept = [this.cls, ...ids.slice(0, room), this.sep];
    const inputIds = [...kept, ...new Array(maxLength - kept.length).fill(this.pad)];
    const attentionMask = inputIds.map((_, k) => (k < kept.length ? 1 : 0));
    return { inputIds, attentionMask, truncated: ids.length > room };
  }
}

/** Load the tokenizer from the export's tokenizer/tokenizer.json (an object or its URL). */
export async function loadTokenizer(specOrUrl) {
  const spec = typeof specOrUrl === "string" ? await (await fetch(specOrUrl)).json() : specOrUrl;
  return new WordPieceTokenizer(spec);
}
