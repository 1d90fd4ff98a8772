// Drawing styles in the prompt, as the server's page handles them (imagen/web/styles.py, which this
// mirrors line for line; tests/web/test_styles_js.py holds the two to the same answers). The picked
// style is added to a prompt that names none, in the prompt box itself, so the caption the model
// reads is on screen.

export const AS_TYPED = "as typed"; // the style choice that leaves the prompt alone

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** What marks a prompt as naming a style: "twemoji" for "twemoji style". */
const styleKey = (style) => style.toLowerCase().replace(/ style$/, "").trim();
// Python's str.strip() and \s know the same whitespace as JavaScript's for the characters a prompt box holds.
const rstripCommas = (s) => s.replace(/,+$/, "");

/** Whether the prompt names any of the styles, anywhere ("a twemoji cat" does). */
export function namesAStyle(prompt, styles) {
  return styles.some((s) => new RegExp(`\\b${escape(styleKey(s))}\\b`).test(prompt.toLowerCase()));
}

/** The prompt with ", STYLE" added when it names none of the checkpoint's styles. */
export function withStyle(prompt, style, styles) {
  if (!prompt.trim() || !styles.includes(style) || namesAStyle(prompt, styles)) return prompt;
  return `${rstripCommas(prompt.trim()).trimEnd()}, ${style}`;
}

/** What picking a style does to the prompt box: its trailing style replaced by `style`, or removed for AS_TYPED. */
export function restyle(prompt, style, styles) {
  const keys = styles.map((s) => escape(styleKey(s))).join("|");
  const bare = keys ? prompt.trim().replace(new RegExp(`\\s*,?\\s*\\b(?:${keys})\\s+style\\s*$`, "i"), "") : prompt;
  return bare.trim() ? withStyle(bare, style, styles) : prompt;
}

/** The style control's choices, its first value and its label, as ImagenDemo.style_control gives them. */
export function styleControl(styles, defaultStyle) {
  if (defaultStyle) {
    const shown = defaultStyle.replace(/ style$/, "");
    return { choices: [AS_TYPED, ...styles], value: AS_TYPED,
             label: `Drawing style: added to a prompt that names none (as typed, it is drawn in ${shown} style)` };
  }
  return { choices: [...styles, AS_TYPED], value: styles.length ? styles[0] : AS_TYPED,
           label: "Drawing style: added to a prompt that names none" };
}
