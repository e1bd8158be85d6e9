/*
 * The history sidebar: the visitor's conversations, newest first, searchable by title and by
 * what was said in them, paged with "Show more".
 */

import { api } from "./api.js";
import { el, shortDate } from "./dom.js";
import { clearNotice, showNotice, state, ui } from "./page.js";

let historyRequest = 0;
// Conversations put in the list here (showInHistory) with the request count at that moment: a
// list the server drew from a request sent before then may not have them yet.
const shownHere = new Map();

function historyItem(conversation) {
  const when = el("time", { className: "when", text: shortDate(conversation.updated_at) });
  when.dateTime = conversation.updated_at;
  const button = el("button", { className: "history-item", attrs: { type: "button" } }, [
    el("span", { className: "history-title", text: conversation.title || "Untitled conversation" }),
    when,
  ]);
  button.dataset.id = conversation.id;
  if (state.conversation && state.conversation.id === conversation.id) button.setAttribute("aria-current", "page");
  return el("li", {}, [button]);
}

function updateEmpty() {
  const empty = ui.historyList.childElementCount === 0;
  ui.historyEmpty.hidden = !empty;
  ui.historyEmpty.textContent = state.search ? "No conversations match." : "No conversations yet.";
}

/**
 * Redraw the list from the server. `quiet`: say nothing if it fails (after a failed answer the
 * answer itself says what went wrong; a second message about the history would hide it).
 */
export async function loadHistory({ append = false, quiet = false } = {}) {
  const ticket = ++historyRequest; // only the latest request may draw the list
  const params = new URLSearchParams();
  if (state.search) params.set("search", state.search);
  let url = `/conversations/?${params}`;
  if (append && state.nextPage) {
    const next = new URL(state.nextPage, window.location.href);
    url = `/conversations/${next.search}`;
  }
  let page;
  try {
    page = await api(url);
  } catch (error) {
    if (ticket === historyRequest && !quiet) showNotice(`Your conversations could not be loaded: ${error.message}`, "history");
    return null;
  }
  if (ticket !== historyRequest) return null;
  clearNotice("history");
  if (!append) ui.historyList.replaceChildren();
  for (const conversation of page.results) ui.historyList.append(historyItem(conversation));
  if (!append && !state.search) keepShownHere(page.results, ticket);
  state.nextPage = page.next;
  ui.historyMore.hidden = !page.next;
  updateEmpty();
  return page;
}

/** A list asked for before a conversation was started here (the page's first load, when the
 * visitor asks at once) must not take it away again: put back what the server could not know. */
function keepShownHere(listed, ticket) {
  const ids = new Set(listed.map((conversation) => conversation.id));
  for (const [id, { conversation, at }] of shownHere) {
    if (ids.has(id) || ticket > at) shownHere.delete(id);
    else ui.historyList.prepend(historyItem(conversation));
  }
}

/** Put a conversation at the top of the list now (a new one, or one just asked in), before the
 * server's list is asked for again. Not while searching: the search decides what is listed. */
export function showInHistory(conversation) {
  if (state.search) return;
  const existing = ui.historyList.querySelector(`button.history-item[data-id="${Number(conversation.id)}"]`);
  if (existing) existing.closest("li").remove();
  ui.historyList.prepend(historyItem(conversation));
  shownHere.set(conversation.id, { conversation, at: historyRequest });
  updateEmpty();
}

/** Mark the open conversation in the list. */
export function markCurrent(id) {
  for (const item of ui.historyList.querySelectorAll("button.history-item")) {
    if (id !== null && item.dataset.id === String(id)) item.setAttribute("aria-current", "page");
    else item.removeAttribute("aria-current");
  }
}

/** The title of a listed conversation changed (renamed here, or named by its first question). */
export function retitle(id, title) {
  const item = ui.historyList.querySelector(`button.history-item[data-id="${Number(id)}"] .history-title`);
  if (item) item.textContent = title || "Untitled conversation";
}
