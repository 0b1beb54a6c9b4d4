// The words read in a frame (OCR): why a result matched, the lines in the preview with the matched words
// marked, and the matched lines' boxes drawn over the picture. OCR text is untrusted: it only ever goes
// into text nodes (el() children, textContent), never into markup.

import { apiFetch } from "./api.js";
import { el, formatTimestamp } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const READ_POLL_MS = 2000;
const READ_POLL_TRIES = 90; // about three minutes of "Reading text…" before giving up quietly

/** Lower case without accents, the way the server compares words. */
export const normalise = (text) => String(text).normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();

/** The words a result was found by in its text, or none. */
export const matchedWords = (result) => (result && result.matched_text && result.matched_text.words) || [];

/** What a result card says about why it matched, e.g. matched: “parking”. */
export const matchedLabel = (words) => `matched: ${words.map((word) => `“${word}”`).join(", ")}`;

const sameLine = (a, b) => a.text === b.text && JSON.stringify(a.box) === JSON.stringify(b.box);

/** Whether a line of the frame is one the query matched: listed in matched_text, or holding a matched word. */
export function isMatchedLine(line, matched) {
  if (!matched) return false;
  if ((matched.lines || []).some((other) => sameLine(line, other))) return true;
  const text = normalise(line.text);
  return (matched.words || []).some((word) => word && text.includes(normalise(word)));
}

/** The line as text nodes, with each place a matched word occurs wrapped in <mark>. */
export function markWords(text, words) {
  // the normalised text, and for each of its characters the offset of the character it came from
  let folded = "";
  const origin = [];
  let offset = 0;
  for (const char of text) {
    const part = normalise(char);
    folded += part;
    for (let i = 0; i < part.length; i += 1) origin.push(offset);
    offset += char.length;
  }
  origin.push(text.length);
  const marked = new Array(text.length).fill(false);
  for (const word of words.map(normalise).filter(Boolean)) {
    for (let at = folded.indexOf(word); at !== -1; at = folded.indexOf(word, at + word.length)) {
      const end = at + word.length < origin.length ? origin[at + word.length] : text.length;
      for (let i = origin[at]; i < end; i += 1) marked[i] = true;
    }
  }
  const nodes = [];
  let start = 0;
  for (let i = 1; i <= text.length; i += 1) {
    if (i === text.length || marked[i] !== marked[start]) {
      const piece = text.slice(start, i);
      nodes.push(marked[start] ? el("mark", {}, piece) : piece);
      start = i;
    }
  }
  return nodes;
}

/** An SVG over the picture (0..1 both ways, stretched with it) with a polygon around each line. */
export function boxesOverlay(lines) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "text-overlay");
  svg.setAttribute("viewBox", "0 0 1 1");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  for (const line of lines) {
    if (!Array.isArray(line.box) || line.box.length < 3) continue;
    const polygon = document.createElementNS(SVG, "polygon");
    polygon.setAttribute("class", "text-box");
    polygon.setAttribute("points", line.box.map(([x, y]) => `${Number(x)},${Number(y)}`).join(" "));
    polygon.setAttribute("vector-effect", "non-scaling-stroke");
    const title = document.createElementNS(SVG, "title");
    title.textContent = line.text;
    polygon.append(title);
    svg.append(polygon);
  }
  return svg;
}

/** The lines whose boxes are drawn: the matched ones, each once. */
function highlighted(lines, matched) {
  const drawn = [...((matched && matched.lines) || [])];
  for (const line of lines) {
    if (isMatchedLine(line, matched) && !drawn.some((other) => sameLine(line, other))) drawn.push(line);
  }
  return drawn;
}

/** The "Text in this picture" part of the preview, and the boxes over the picture. */
export class FrameTextView {
  constructor({ section, title, status, list }) {
    this.section = section;
    this.title = title;
    this.status = status;
    this.list = list;
    this.overlay = null;
    this.timer = null;
  }

  clear() {
    clearTimeout(this.timer);
    this.timer = null;
    this.section.hidden = true;
    this.status.textContent = "";
    this.list.replaceChildren();
    if (this.overlay) this.overlay.remove();
    this.overlay = null;
  }

  /**
   * Show the text of the result's frame; `frame` is the picture's wrapper to draw boxes on (none for a video:
   * it plays on, the boxes are of one moment). `isCurrent()` turns false once the preview moved on.
   */
  show(result, frame, isCurrent) {
    this.clear();
    const matched = result.matched_text || null;
    this.title.textContent = result.kind === "video" && result.timestamp != null
      ? `Text at ${formatTimestamp(result.timestamp)}`
      : "Text in this picture";
    this.frame = frame;
    this.render(matched ? matched.lines : [], matched, matched ? "" : null);
    this.load(result, matched, isCurrent, 0);
  }

  async load(result, matched, isCurrent, tries) {
    let reply;
    try {
      reply = await apiFetch(`frame/${result.frame_id}/text`);
    } catch {
      return; // the matched lines (if any) stay; the text is extra
    }
    if (!isCurrent()) return;
    if (reply.status === "unread" || reply.status === "running") {
      this.render(matched ? matched.lines : [], matched, "Reading text…");
      if (tries < READ_POLL_TRIES) {
        this.timer = setTimeout(() => {
          if (isCurrent()) this.load(result, matched, isCurrent, tries + 1);
        }, READ_POLL_MS);
      }
      return;
    }
    // read: every line; off or failed: only what the search matched, without a word about it
    const lines = reply.status === "read" && reply.lines.length ? reply.lines : (matched ? matched.lines : []);
    this.render(lines, matched, lines.length ? "" : null);
  }

  /** `note`: null hides the section when there are no lines; a string is shown above them. */
  render(lines, matched, note) {
    this.section.hidden = !lines.length && !note;
    this.status.textContent = note || "";
    this.status.hidden = !note;
    const words = (matched && matched.words) || [];
    this.list.replaceChildren(...lines.map((line) => {
      const hit = isMatchedLine(line, matched);
      return el("li", { class: hit ? "text-line matched" : "text-line", title: `confidence ${Number(line.confidence).toFixed(2)}` },
        ...markWords(String(line.text), words));
    }));
    if (this.overlay) this.overlay.remove();
    this.overlay = null;
    const drawn = this.frame ? highlighted(lines, matched) : [];
    if (drawn.length) {
      this.overlay = boxesOverlay(drawn);
      this.frame.append(this.overlay);
    }
  }
}
