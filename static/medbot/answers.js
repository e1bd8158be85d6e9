/*
 * Messages on the page: questions, answers on their way (with what MedBot is doing meanwhile),
 * saved answers with their source, citations, actions and feedback, and answers that were
 * stopped or interrupted (with "Try again").
 */

import { api } from "./api.js";
import { el, icon, readJson, timeNode, writeJson } from "./dom.js";
import { link, plainText, renderMarkdown, renderPlain, safeUrl } from "./markdown.js";
import { announce, config, hooks, showNotice, ui } from "./page.js";

const RATED_KEY = "medbot.rated"; // message id → rating, so a reload shows what was rated
const SOURCE_LABELS = {
  model: "AI answer",
  extract: "From trusted sources",
  rule: "Curated answer",
  emergency: "Emergency",
  unavailable: "No reliable answer",
};
// MedBot's reply to thanks, a greeting or a goodbye: not an answer, so not "No reliable answer".
const PLEASANTRY_LABEL = "MedBot";

function isPleasantry(message) {
  return message.source === "unavailable" && message.fallback === "pleasantry";
}

/** The badge text for a saved answer. */
function sourceLabel(message) {
  const source = SOURCE_LABELS[message.source] ? message.source : "unavailable";
  if (isPleasantry(message)) return PLEASANTRY_LABEL;
  // Under an urgent banner, "No reliable answer" would read as if nothing applied: the banner is the answer.
  if (source === "unavailable" && message.triage_level === "urgent") return "Urgent advice";
  return SOURCE_LABELS[source];
}
const REASONS = [
  ["", "Choose a reason (optional)"],
  ["wrong", "Incorrect"],
  ["unclear", "Unclear"],
  ["unsafe", "Unsafe"],
  ["off_topic", "Off topic"],
  ["other", "Other"],
];
// Under every answer; the whole disclaimer is shown once, at the top of the conversation, and
// the line links to it (after a few answers it has scrolled out of sight).
function shortDisclaimer() {
  return el("p", { className: "message-disclaimer" }, [
    "General information, not a diagnosis: ",
    el("a", { attrs: { href: "#conversation-disclaimer" }, text: "see the note at the top" }),
    ".",
  ]);
}

// What MedBot is doing while an answer is prepared, in the order the server does it.
export const STAGES = {
  triage: "Checking for emergencies…",
  sources: "Looking up trusted sources…",
  writing: "Writing…",
  waiting: "Waiting for the previous answer to stop…",
};

function head(children, createdAt) {
  const node = el("div", { className: "message-head" }, children);
  const when = createdAt ? timeNode(createdAt) : null;
  if (when) node.append(when);
  return node;
}

export function questionNode(text, createdAt) {
  const body = el("div", { className: "message-body" });
  renderPlain(body, text);
  const meta = el("div", { className: "message-meta" });
  const when = createdAt ? timeNode(createdAt) : null;
  if (when) meta.append(when);
  return el("article", { className: "message question", attrs: { "aria-label": "Your question" } }, [body, meta]);
}

/** The time of a question, once the server has said when it saved it. */
export function setQuestionTime(article, createdAt) {
  const when = timeNode(createdAt);
  if (when) article.querySelector(".message-meta").replaceChildren(when);
}

function retryButton(question) {
  const button = el("button", { className: "button subtle small retry", attrs: { type: "button" } }, [
    icon("retry"),
    el("span", { text: "Try again" }),
  ]);
  button.addEventListener("click", () => {
    button.disabled = true;
    hooks.retry(question);
  });
  return button;
}

/** An answer on its way: shows what MedBot is doing until the text comes, then the text. */
export function pendingAnswer(question) {
  const article = el("article", {
    className: "message answer pending",
    attrs: { "aria-label": "MedBot's answer", "aria-busy": "true" },
  });
  const stageText = el("span", { className: "answer-stage", text: STAGES.triage });
  const typing = el("span", { className: "typing", attrs: { "aria-hidden": "true" } }, [
    el("span", { className: "dot" }),
    el("span", { className: "dot" }),
    el("span", { className: "dot" }),
  ]);
  const status = el("p", { className: "answer-status" }, [typing, stageText]);
  const body = el("div", { className: "message-body" });
  article.append(status, body);
  let text = "";

  const end = (kind, note) => {
    status.remove();
    article.classList.remove("pending");
    article.classList.add(kind);
    article.removeAttribute("aria-busy");
    article.append(el("p", { className: "message-note", text: note }), el("div", { className: "message-actions" }, [retryButton(question)]));
  };

  return {
    node: article,
    hasText: () => text.trim() !== "",
    stage(name) {
      if (STAGES[name]) stageText.textContent = STAGES[name];
    },
    /** The text so far. Drawn here only: the page's live region is not touched per piece. */
    showText(streamed) {
      text = streamed;
      if (typing.isConnected) {
        typing.remove();
        stageText.textContent = STAGES.writing;
        article.append(status); // under the text from now on
      }
      renderMarkdown(body, text);
    },
    finish(message) {
      fillAnswer(article, message, question);
    },
    stopped() {
      end("stopped", text.trim() ? "You stopped this answer before it finished." : "You stopped this answer before it started.");
    },
    interrupted(note) {
      end("failed", text.trim() ? `${note} The part that arrived is kept above.` : note);
    },
  };
}

/** The sources an answer came from, as a list of links (text only, built without innerHTML). */
function citationList(citations) {
  if (!Array.isArray(citations) || citations.length === 0) return null;
  const items = citations.map((citation) => {
    const title = String(citation.title || "Source");
    const url = safeUrl(String(citation.url || ""));
    const name = url ? link(title, url) : el("span", { text: title });
    const publisher = citation.publisher ? ` (${citation.publisher})` : "";
    return el("li", {}, [name, publisher]);
  });
  return el("div", { className: "citations" }, [el("p", { className: "citations-label", text: "Sources" }), el("ul", {}, items)]);
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// "call or text 988" in an answer's first sentence: the number it tells people to reach first.
const FIRST_NUMBER = /^[^.!?]*?\b(call or text|text or call|call|text)\s+(\+?\d(?:[\d ]*\d)?)\b/i;

function digits(number) {
  return number.replace(/[^\d+]/g, "");
}

/** "Call <number> now" (or "Call or text …"), loud, with the number as a phone link. */
function callNow(verb, number) {
  return el("strong", { className: "call-now" }, [
    `${verb} `,
    el("a", { text: number, attrs: { href: `tel:${digits(number)}` } }),
    " now",
  ]);
}

/**
 * A crisis answer ("Please reach out now: call or text 988 (…), or call 911 if you are in immediate
 * danger") leads with the crisis line it names first, not the emergency number; the text below keeps
 * both. Null when the answer's first number is the emergency number, or it names none.
 */
function crisisLine(content, number) {
  const match = content.match(FIRST_NUMBER);
  if (!match || digits(match[2]) === digits(number)) return null;
  const verb = match[1].charAt(0).toUpperCase() + match[1].slice(1).toLowerCase();
  return el("p", { className: "call-line call-line-crisis" }, [callNow(verb, match[2])]);
}

/**
 * An emergency answer's first line: "Call <number> now", loud, with the number as a phone link,
 * said once. When the answer's own text starts with it ("Call 911 now and put the phone on
 * speaker."), that sentence becomes the line and is not repeated below. Returns [line, rest].
 */
function callLine(content) {
  const number = config.emergencyNumber;
  const crisis = crisisLine(content, number);
  if (crisis) return [crisis, content];
  const line = el("p", { className: "call-line" }, [callNow("Call", number)]);
  const opening = new RegExp(`^\\s*call\\s+${escapeRegExp(number)}\\s+now\\b`, "i");
  const match = number ? content.match(opening) : null;
  if (!match) return [line, content];
  const after = content.slice(match[0].length);
  // The rest of the first sentence stays on the line, in ordinary type.
  const end = after.search(/[.!?](\s|$)/);
  const rest = end >= 0 ? after.slice(0, end + 1) : after;
  if (rest.trim() && rest.trim() !== ".") line.append(el("span", { className: "call-rest", text: rest }));
  return [line, end >= 0 ? after.slice(end + 1).trimStart() : ""];
}

/** (Re)build an answer article from a saved assistant message. */
export function fillAnswer(article, message, question) {
  const source = SOURCE_LABELS[message.source] ? message.source : "unavailable";
  article.className = `message answer source-${source}`;
  article.removeAttribute("aria-busy");
  article.setAttribute("aria-label", "MedBot's answer");
  article.dataset.id = message.id;
  article.replaceChildren();

  const label = el("span", { className: `badge badge-${isPleasantry(message) ? "pleasantry" : source}`, text: sourceLabel(message) });
  const parts = [label];
  if (source === "rule" && message.matched_rule) parts.push(el("span", { className: "topic", text: message.matched_rule }));
  article.append(head(parts, message.created_at));

  let content = String(message.content || "");
  if (source === "emergency") {
    // The emergency number comes first and loudest; role=alert interrupts a screen reader.
    article.setAttribute("role", "alert");
    article.setAttribute("aria-label", "Emergency advice");
    const [line, rest] = callLine(content);
    article.append(line);
    content = rest;
  }

  if (message.triage_level === "urgent") {
    article.append(
      el("p", { className: "urgent-banner", attrs: { role: "note" } }, [
        el("strong", { text: "Urgent. " }),
        message.triage_note || "See a doctor or urgent care today: what you describe should be checked in person soon.",
      ]),
    );
  }

  const body = el("div", { className: "message-body" });
  renderMarkdown(body, content);
  article.append(body);
  const sources = citationList(message.citations);
  if (sources) article.append(sources);
  if (message.partial) {
    article.append(el("p", { className: "message-note", text: "This answer was stopped before it finished." }));
  }
  if (message.disclaimer) {
    article.append(shortDisclaimer());
  }
  article.append(answerActions(message, message.partial && question ? question : null));
}

/** A question the server has no answer to (stopped before it began, or the server died). */
export function unansweredNode(question) {
  const article = el("article", { className: "message answer failed", attrs: { "aria-label": "MedBot's answer" } }, [
    el("p", { className: "message-note", text: "This question has no answer: it was stopped or interrupted." }),
    el("div", { className: "message-actions" }, [retryButton(question)]),
  ]);
  return article;
}

/** What a screen reader hears once an answer is complete. */
export function spokenAnswer(message) {
  return `MedBot answered (${sourceLabel(message)}): ${plainText(message.content)}`;
}

function answerActions(message, retryQuestion) {
  const copy = el("button", { className: "chip copy", attrs: { type: "button" } }, [icon("copy"), el("span", { text: "Copy" })]);
  copy.addEventListener("click", () => copyAnswer(copy, message));

  const rated = readJson(RATED_KEY, {})[message.id];
  const up = el("button", {
    className: "chip thumb",
    attrs: { type: "button", "aria-label": "Helpful", title: "Helpful", "aria-pressed": String(rated === 1) },
  });
  up.append(icon("up"));
  const down = el("button", {
    className: "chip thumb",
    attrs: { type: "button", "aria-label": "Not helpful", title: "Not helpful", "aria-pressed": String(rated === -1) },
  });
  down.append(icon("down"));
  const thanks = el("span", { className: "feedback-thanks", text: rated ? "Thanks for your feedback" : "" });
  if (rated) {
    up.disabled = true;
    down.disabled = true;
  }
  const group = el("div", { className: "feedback", attrs: { role: "group", "aria-label": "Rate this answer" } }, [up, down, thanks]);
  const bar = el("div", { className: "message-actions" }, [copy, group]);
  if (retryQuestion) bar.append(retryButton(retryQuestion));
  const wrapper = el("div", {}, [bar]);

  up.addEventListener("click", () => sendFeedback(message, { rating: 1 }, { up, down, thanks, form: null }));
  down.addEventListener("click", () => {
    const existing = wrapper.querySelector(".feedback-form");
    if (existing) {
      existing.querySelector("select").focus();
      return;
    }
    const form = feedbackForm(message, { up, down, thanks });
    wrapper.append(form);
    down.setAttribute("aria-expanded", "true");
    form.querySelector("select").focus();
  });
  return wrapper;
}

function feedbackForm(message, controls) {
  const id = `feedback-${message.id}`;
  const select = el("select", { attrs: { id: `${id}-reason`, name: "reason" } });
  for (const [value, text] of REASONS) select.append(el("option", { text, attrs: { value } }));
  const comment = el("textarea", {
    attrs: { id: `${id}-comment`, name: "comment", rows: "2", maxlength: "1000", placeholder: "What was wrong? (optional)" },
  });
  const cancel = el("button", { className: "button subtle small", text: "Cancel", attrs: { type: "button" } });
  const submit = el("button", { className: "button primary small", text: "Send feedback", attrs: { type: "submit" } });
  const form = el("form", { className: "feedback-form", attrs: { "aria-label": "Why was this answer not helpful?" } }, [
    el("label", { text: "Reason", attrs: { for: `${id}-reason` } }),
    select,
    el("label", { text: "Comment", attrs: { for: `${id}-comment` } }),
    comment,
    el("div", { className: "feedback-form-actions" }, [cancel, submit]),
  ]);
  cancel.addEventListener("click", () => {
    form.remove();
    controls.down.removeAttribute("aria-expanded");
    controls.down.focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const payload = { rating: -1 };
    if (select.value) payload.reason = select.value;
    if (comment.value.trim()) payload.comment = comment.value.trim();
    sendFeedback(message, payload, { ...controls, form });
  });
  return form;
}

async function sendFeedback(message, payload, controls) {
  const { up, down, thanks, form } = controls;
  up.disabled = true;
  down.disabled = true;
  try {
    await api(`/messages/${message.id}/feedback`, { method: "POST", body: payload });
  } catch (error) {
    up.disabled = false;
    down.disabled = false;
    showNotice(`Your feedback was not sent: ${error.message}`);
    return;
  }
  (payload.rating === 1 ? up : down).setAttribute("aria-pressed", "true");
  down.removeAttribute("aria-expanded");
  thanks.textContent = "Thanks for your feedback";
  if (form) form.remove();
  const rated = readJson(RATED_KEY, {});
  rated[message.id] = payload.rating;
  const ids = Object.keys(rated);
  for (const old of ids.slice(0, Math.max(0, ids.length - 500))) delete rated[old];
  writeJson(RATED_KEY, rated);
  announce("Thanks for your feedback.");
  (payload.rating === 1 ? up : down).closest(".message-actions").querySelector(".copy").focus();
}

async function copyAnswer(button, message) {
  const text = message.disclaimer ? `${message.content}\n\n${message.disclaimer}` : message.content;
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    // Older browsers and plain-http hosts: copy through a temporary selection.
    const area = el("textarea", { className: "copy-buffer", attrs: { readonly: "", "aria-hidden": "true" } });
    area.value = text;
    document.body.append(area);
    area.select();
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
    area.remove();
    button.focus();
  }
  const label = button.querySelector("span");
  label.textContent = copied ? "Copied" : "Copy failed";
  announce(copied ? "Answer copied." : "The answer could not be copied.");
  window.setTimeout(() => {
    label.textContent = "Copy";
  }, 2000);
}

/** The conversation's one full disclaimer (the latest answer's, else the page's current one). */
export function showDisclaimer(text) {
  const current = ui.disclaimer.querySelector(".conversation-disclaimer-text");
  if (text && current.textContent !== text) current.textContent = text;
}
