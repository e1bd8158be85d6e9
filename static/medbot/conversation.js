/*
 * The open conversation: its title, its address (/c/<id>, with working back, forward and
 * reload), its messages, and rename, export and delete.
 */

import { API, api } from "./api.js";
import { fillAnswer, questionNode, showDisclaimer, unansweredNode } from "./answers.js";
import { el, writeJson } from "./dom.js";
import { loadHistory, markCurrent, retitle } from "./history.js";
import { announce, clearNotice, reveal, showNotice, state, ui, updateWelcome } from "./page.js";

export const OPEN_KEY = "medbot.conversation"; // the id of the open conversation, across visits to /

/** The address of a conversation, or of a new one. */
export function pathFor(id) {
  return id ? `/c/${id}` : "/";
}

/** The conversation an address names, or null for "/" (a new conversation). */
export function idFromPath(pathname) {
  const match = pathname.match(/^\/c\/(\d+)\/?$/);
  return match ? Number(match[1]) : null;
}

/** Point the address bar at `id`: "push" a new history entry, "replace" this one, or leave it. */
function navigate(id, mode) {
  if (!mode) return;
  const path = pathFor(id);
  if (window.location.pathname === path) return;
  const entry = { conversation: id };
  if (mode === "push") window.history.pushState(entry, "", path);
  else window.history.replaceState(entry, "", path);
}

export function renderTitle() {
  const conversation = state.conversation;
  ui.title.textContent = conversation ? conversation.title || "Untitled conversation" : "New conversation";
  document.title = conversation && conversation.title ? `${conversation.title} · MedBot` : "MedBot";
}

/** Make `conversation` ({id, title}, or null for a new one) the open one; `history` as navigate(). */
export function setConversation(conversation, { history = null } = {}) {
  state.conversation = conversation ? { id: conversation.id, title: conversation.title || "" } : null;
  writeJson(OPEN_KEY, conversation ? conversation.id : null);
  navigate(conversation ? conversation.id : null, history);
  renderTitle();
  if (conversation) {
    const base = `${API}/conversations/${conversation.id}/export`;
    ui.exportMd.href = `${base}?format=md`;
    ui.exportJson.href = `${base}?format=json`;
  }
  ui.actions.hidden = !conversation;
  markCurrent(conversation ? conversation.id : null);
}

/** Reload the history list; keep the open conversation's title in step with it. */
export async function refreshHistory(options = {}) {
  const page = await loadHistory(options);
  const open = page && state.conversation && page.results.find((item) => item.id === state.conversation.id);
  if (open && open.title !== state.conversation.title) {
    state.conversation.title = open.title;
    renderTitle();
  }
}

export function renderMessages(messages) {
  ui.log.replaceChildren();
  const answered = new Set(messages.filter((m) => m.role === "assistant").map((m) => m.reply_to));
  const questions = new Map();
  messages.forEach((message, index) => {
    if (message.role === "user") {
      questions.set(message.id, message.content);
      ui.log.append(questionNode(message.content, message.created_at));
      // A question left without an answer (stopped before it began, or the server died): the
      // next message is not its answer, so offer to ask it again.
      const next = messages[index + 1];
      if (!answered.has(message.id) && (!next || next.role === "user")) ui.log.append(unansweredNode(message.content));
    } else {
      const article = el("article");
      fillAnswer(article, message, questions.get(message.reply_to) || null);
      ui.log.append(article);
    }
  });
  const answers = messages.filter((m) => m.role === "assistant" && m.disclaimer);
  if (answers.length) showDisclaimer(answers[answers.length - 1].disclaimer);
  updateWelcome();
  state.follow = true;
  const asked = ui.log.querySelectorAll(".question");
  reveal(asked[asked.length - 1]);
}

export function closeRename(focusButton = false) {
  if (ui.renameForm.hidden) return;
  ui.renameForm.hidden = true;
  ui.title.hidden = false;
  ui.actions.hidden = !state.conversation;
  if (focusButton) ui.renameButton.focus();
}

/** Show a new, empty conversation. `history` as navigate(). */
export function startNew({ focus = true, history = "push", stop = () => {} } = {}) {
  if (state.busy) stop();
  closeRename();
  setConversation(null, { history });
  ui.log.replaceChildren();
  updateWelcome();
  clearNotice();
  if (focus) ui.input.focus();
}

/** Open a saved conversation. `history` as navigate(); `focus` moves focus to its title. */
export async function openConversation(id, { focus = true, history = "push", stop = () => {} } = {}) {
  if (state.busy) stop();
  closeRename();
  let conversation;
  try {
    conversation = await api(`/conversations/${id}/`);
  } catch (error) {
    if (error.kind === "notfound") {
      // Deleted elsewhere, or it belonged to a session that ended: start afresh.
      startNew({ focus: false, history: "replace" });
      writeJson(OPEN_KEY, null);
      refreshHistory();
      if (focus) showNotice("That conversation no longer exists.");
      return false;
    }
    showNotice(`The conversation could not be opened: ${error.message}`);
    return false;
  }
  clearNotice();
  setConversation(conversation, { history });
  renderMessages(conversation.messages || []);
  if (focus) ui.title.focus();
  return true;
}

// --- rename, delete -----------------------------------------------------------------------------

export function openRename() {
  if (!state.conversation) return;
  ui.renameInput.value = state.conversation.title;
  ui.title.hidden = true;
  ui.actions.hidden = true;
  ui.renameForm.hidden = false;
  ui.renameInput.focus();
  ui.renameInput.select();
}

export async function saveRename(event) {
  event.preventDefault();
  if (!state.conversation) return;
  const title = ui.renameInput.value.trim();
  try {
    const updated = await api(`/conversations/${state.conversation.id}/`, { method: "PATCH", body: { title } });
    state.conversation.title = updated.title;
  } catch (error) {
    showNotice(`The conversation was not renamed: ${error.message}`);
    return;
  }
  renderTitle();
  retitle(state.conversation.id, state.conversation.title);
  closeRename(true);
  announce("Conversation renamed.");
  refreshHistory();
}

export function askDelete() {
  if (!state.conversation) return;
  ui.deleteName.textContent = `“${state.conversation.title || "Untitled conversation"}”`;
  ui.deleteDialog.returnValue = "";
  ui.deleteDialog.showModal();
}

export async function confirmDelete() {
  if (ui.deleteDialog.returnValue !== "delete" || !state.conversation) {
    ui.deleteButton.focus();
    return;
  }
  try {
    await api(`/conversations/${state.conversation.id}/`, { method: "DELETE" });
  } catch (error) {
    if (error.kind !== "notfound") {
      showNotice(`The conversation was not deleted: ${error.message}`);
      ui.deleteButton.focus();
      return;
    }
  }
  startNew({ history: "replace" }); // its address leads nowhere now
  announce("Conversation deleted.");
  refreshHistory();
}
