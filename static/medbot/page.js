/*
 * What the chat's modules share: the page's elements, its settings, the chat's state, and the
 * messages it shows (the notice under the answers, the screen-reader status line).
 */

import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);

export const app = $("app");

export const config = app
  ? {
      maxChars: Number(app.dataset.maxChars) || 2000,
      emergencyNumber: app.dataset.emergencyNumber || "",
      // The conversation the server opened the page on (/c/<id>), or null on /.
      conversationId: Number(app.dataset.conversation) || null,
    }
  : {};

export const ui = app
  ? {
      toggle: $("sidebar-toggle"),
      sidebar: $("sidebar"),
      scrim: $("scrim"),
      newButton: $("new-conversation"),
      searchForm: $("search-form"),
      search: $("search"),
      historyList: $("history-list"),
      historyEmpty: $("history-empty"),
      historyMore: $("history-more"),
      title: $("conversation-title"),
      actions: $("conversation-actions"),
      renameButton: $("rename-button"),
      renameForm: $("rename-form"),
      renameInput: $("rename-input"),
      renameCancel: $("rename-cancel"),
      exportMenu: $("export-menu"),
      exportMd: $("export-md"),
      exportJson: $("export-json"),
      deleteButton: $("delete-button"),
      deleteDialog: $("delete-dialog"),
      deleteName: $("delete-name"),
      scroller: $("scroller"),
      welcome: $("welcome"),
      disclaimer: $("conversation-disclaimer"),
      log: $("log"),
      notice: $("notice"),
      composer: $("composer"),
      input: $("question"),
      counter: $("char-count"),
      send: $("send"),
      stop: $("stop"),
      status: $("status"),
    }
  : {};

export const state = {
  conversation: null, // {id, title} of the open conversation, or null for a new one
  busy: false, // an answer is on its way
  follow: true, // scroll along with the answer until the person scrolls themselves
  controller: null, // AbortController of the answer on its way
  stoppedAt: 0, // when the person last pressed Stop (ms since epoch)
  waitUntil: 0, // rate limited until this time (ms since epoch)
  search: "",
  nextPage: null,
};

/** Set by main.js: what "Try again" does (modules that draw answers cannot import the asking). */
export const hooks = {
  retry: (question) => {
    void question;
  },
};

let announceTimer = 0;

/** Say something to screen readers once, through the page's one polite status region. */
export function announce(message) {
  // Clearing first makes screen readers repeat a message that is the same as the last one.
  window.clearTimeout(announceTimer);
  ui.status.textContent = "";
  announceTimer = window.setTimeout(() => {
    ui.status.textContent = message;
  }, 50);
}

export function showNotice(message, kind = "error") {
  ui.notice.replaceChildren(el("span", { text: message }));
  ui.notice.dataset.kind = kind;
}

export function clearNotice(kind) {
  if (kind && ui.notice.dataset.kind !== kind) return;
  ui.notice.replaceChildren();
  delete ui.notice.dataset.kind;
}

/**
 * Keep the latest exchange in view: scroll towards the end, but never so far that the question
 * leaves the top of the view (a long answer is read from its start). Stops following once the
 * person scrolls by themselves.
 */
export function reveal(question) {
  if (!state.follow) return;
  const scroller = ui.scroller;
  const end = scroller.scrollHeight - scroller.clientHeight;
  const questionTop = question ? question.offsetTop - 12 : end;
  scroller.scrollTop = Math.max(0, Math.min(questionTop, end));
}

export function updateWelcome() {
  const empty = ui.log.childElementCount === 0;
  ui.welcome.hidden = !empty;
  ui.disclaimer.hidden = empty;
}
