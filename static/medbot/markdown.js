/*
 * A small, safe Markdown for answers: paragraphs, line breaks, bullet and numbered lists,
 * headings (shown as bold lines), **bold**, *emphasis*, `code`, and links to http(s) addresses.
 *
 * Answers are untrusted (a model wrote them, or a curator typed them): this builds DOM nodes
 * with createElement and textContent only, never innerHTML, so "<b>" or "<script>" in the text
 * is shown as those characters. A link is made only for an absolute http: or https: address;
 * anything else ("javascript:", "data:", relative paths) stays plain text.
 */

import { el } from "./dom.js";

/** A web address safe to link to: http(s) only, never javascript: or data:. */
export function safeUrl(url) {
  try {
    const parsed = new URL(String(url));
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

export function link(text, url) {
  return el("a", { text, attrs: { href: url, target: "_blank", rel: "noopener noreferrer nofollow" } });
}

const BULLET = /^\s{0,3}[-*•+]\s+/;
const NUMBERED = /^\s{0,3}(\d{1,3})[.)]\s+/;
const HEADING = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/;
const CONTINUATION = /^\s{2,}\S/; // an indented line continues the list item above it

// Inline syntax, tried in this order at each position (sticky: they match only where they stand).
const ESCAPE = /\\([\\`*_[\]()#+\-.!<>])/y;
const CODE = /`([^`\n]+)`/y;
const STRONG = /\*\*(?=\S)([\s\S]*?\S)\*\*/y;
const EMPHASIS = /\*(?=[^\s*])([^*\n]*?[^\s*])\*(?![\w*])/y;
const MD_LINK = /\[([^\]\n]{1,300})\]\(\s*<?((?:[^\s()<>]|\([^\s()<>]*\))+)>?\s*\)/y;
const ANGLE_LINK = /<(https?:\/\/[^\s<>]+)>/iy;
const BARE_LINK = /https?:\/\/[^\s<>]+/iy;

function matchAt(pattern, text, index) {
  pattern.lastIndex = index;
  return pattern.exec(text);
}

/** A bare address without the punctuation that ends its sentence ("see https://x.org/a." ). */
function trimUrl(raw) {
  let url = raw.replace(/[.,;:!?'"*_]+$/, "");
  while (url.endsWith(")") && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) {
    url = url.slice(0, -1);
  }
  return url;
}

/** Inline Markdown of one paragraph or list item, as an array of nodes. */
export function inline(text, nested = false) {
  const nodes = [];
  let buffer = "";
  const flush = () => {
    if (buffer) nodes.push(document.createTextNode(buffer));
    buffer = "";
  };
  let index = 0;
  while (index < text.length) {
    const char = text[index];
    const before = index > 0 ? text[index - 1] : "";
    let match;
    if (char === "\\" && (match = matchAt(ESCAPE, text, index))) {
      buffer += match[1];
    } else if (char === "`" && (match = matchAt(CODE, text, index))) {
      flush();
      nodes.push(el("code", { text: match[1] }));
    } else if (char === "*" && !nested && (match = matchAt(STRONG, text, index))) {
      flush();
      nodes.push(el("strong", {}, inline(match[1], true)));
    } else if (char === "*" && !/[\w*]/.test(before) && (match = matchAt(EMPHASIS, text, index))) {
      flush();
      nodes.push(el("em", {}, inline(match[1], true)));
    } else if (char === "[" && (match = matchAt(MD_LINK, text, index))) {
      flush();
      const url = safeUrl(match[2]);
      // A link to anything but http(s) keeps only its words: the address is never followed.
      nodes.push(url ? link(match[1], url) : document.createTextNode(match[1]));
    } else if (char === "<" && (match = matchAt(ANGLE_LINK, text, index))) {
      flush();
      const url = safeUrl(match[1]);
      nodes.push(url ? link(match[1], url) : document.createTextNode(match[0]));
    } else if ((char === "h" || char === "H") && !/[\w/]/.test(before) && (match = matchAt(BARE_LINK, text, index))) {
      const raw = trimUrl(match[0]);
      const url = safeUrl(raw);
      if (url) {
        flush();
        nodes.push(link(raw, url));
        index += raw.length;
        continue;
      }
      buffer += match[0];
      index += match[0].length;
      continue;
    } else {
      buffer += char;
      index += 1;
      continue;
    }
    index += match[0].length;
  }
  flush();
  return nodes;
}

function paragraph(lines) {
  const node = el("p");
  lines.forEach((line, index) => {
    if (index) node.append(el("br"));
    node.append(...inline(line.trim()));
  });
  return node;
}

/** Answer text as Markdown, rendered into `container` (its old children are replaced). */
export function renderMarkdown(container, text) {
  container.replaceChildren();
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  let prose = []; // lines of the paragraph being read
  let list = null; // {node, ordered} of the list being read
  let item = null; // the list item being read

  const endProse = () => {
    if (prose.length) container.append(paragraph(prose));
    prose = [];
  };
  const endList = () => {
    list = null;
    item = null;
  };

  for (const line of lines) {
    if (!line.trim()) {
      endProse();
      endList();
      continue;
    }
    const heading = line.match(HEADING);
    const bullet = BULLET.test(line);
    const numbered = line.match(NUMBERED);
    if (heading) {
      endProse();
      endList();
      container.append(el("p", { className: "md-heading" }, [el("strong", {}, inline(heading[1], true))]));
    } else if (bullet || numbered) {
      endProse();
      const ordered = Boolean(numbered);
      if (!list || list.ordered !== ordered) {
        const start = ordered ? Number(numbered[1]) : 1;
        const node = el(ordered ? "ol" : "ul", { attrs: { start: ordered && start !== 1 ? start : null } });
        container.append(node);
        list = { node, ordered };
      }
      item = el("li", {}, inline(line.replace(ordered ? NUMBERED : BULLET, "").trim()));
      list.node.append(item);
    } else if (item && CONTINUATION.test(line)) {
      item.append(" ", ...inline(line.trim()));
    } else {
      endList();
      prose.push(line);
    }
  }
  endProse();
}

/** What a person typed: paragraphs and line breaks, nothing else interpreted. */
export function renderPlain(container, text) {
  container.replaceChildren();
  for (const block of String(text).split(/\n\s*\n/)) {
    const lines = block.split("\n").filter((line) => line.trim() !== "");
    if (!lines.length) continue;
    const node = el("p");
    lines.forEach((line, index) => {
      if (index) node.append(el("br"));
      node.append(line);
    });
    container.append(node);
  }
}

/** The text a screen reader hears for an answer: the words, without Markdown's marks. */
export function plainText(text) {
  const scratch = document.createElement("div");
  renderMarkdown(scratch, text);
  return Array.from(scratch.querySelectorAll("p, li"), (block) => block.textContent.trim())
    .filter(Boolean)
    .join(" ");
}
