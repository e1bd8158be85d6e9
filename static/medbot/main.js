/*
 * MedBot's browser chat: plain JavaScript modules on top of the REST API (/api/v1/), no build
 * step. This module wires the page together and starts it.
 *
 *   api.js           requests and Server-Sent Events
 *   dom.js           element building, dates, local storage
 *   markdown.js      the safe Markdown answers are drawn with
 *   page.js          the page's elements, settings and shared state; notices and announcements
 *   answers.js       questions and answers on the page
 *   history.js       the sidebar's list of conversations
 *   conversation.js  the open conversation: address, title, messages, rename, delete
 *   ask.js           asking, streaming, stopping, Try again
 *
 * Two rules shape all of them:
 *  - Everything a server or model wrote is untrusted: it reaches the page through textContent
 *    and DOM nodes built here, never innerHTML. The Content-Security-Policy forbids inline
 *    scripts and styles as a second line of defence.
 *  - What the person typed is never lost (see ask.js).
 */

import { ask, retry, stopAnswer, updateCounter } from "./ask.js";
import {
  askDelete,
  closeRename,
  confirmDelete,
  idFromPath,
  OPEN_KEY,
  openConversation,
  openRename,
  refreshHistory,
  saveRename,
  startNew,
} from "./conversation.js";
import { readJson } from "./dom.js";
import { loadHistory } from "./history.js";
import { app, clearNotice, config, hooks, showNotice, state, ui, updateWelcome } from "./page.js";

function stopFollowing(event) {
  if (event.type !== "keydown" || ["PageUp", "PageDown", "ArrowUp", "ArrowDown", "Home", "End"].includes(event.key)) {
    state.follow = false;
  }
}

// --- the sidebar on narrow screens ----------------------------------------------------------------

const narrow = window.matchMedia("(max-width: 799px)");

function openSidebar() {
  ui.sidebar.classList.add("open");
  ui.scrim.hidden = false;
  ui.toggle.setAttribute("aria-expanded", "true");
  ui.newButton.focus();
}

function closeSidebar(returnFocus = true) {
  if (!ui.sidebar.classList.contains("open")) return;
  ui.sidebar.classList.remove("open");
  ui.scrim.hidden = true;
  ui.toggle.setAttribute("aria-expanded", "false");
  if (returnFocus) ui.toggle.focus();
}

// --- wiring -----------------------------------------------------------------------------------------

function wire() {
  hooks.retry = retry;
  const options = { stop: stopAnswer };

  for (const type of ["wheel", "touchmove", "keydown"]) {
    ui.scroller.addEventListener(type, stopFollowing, { passive: true });
  }
  ui.input.addEventListener("input", updateCounter);
  ui.input.addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter (and Enter while composing with an IME) makes a new line.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey) {
      event.preventDefault();
      if (!state.busy) ask(ui.input.value);
    }
  });
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    ask(ui.input.value);
    ui.input.focus();
  });
  ui.stop.addEventListener("click", stopAnswer);
  for (const button of document.querySelectorAll(".suggestion")) {
    button.addEventListener("click", () => {
      ui.input.value = button.textContent;
      updateCounter();
      ui.input.focus();
      ask(ui.input.value);
    });
  }

  ui.newButton.addEventListener("click", () => {
    startNew(options);
    closeSidebar(false);
  });
  ui.historyList.addEventListener("click", (event) => {
    const item = event.target.closest("button.history-item");
    if (!item) return;
    closeSidebar(false);
    openConversation(Number(item.dataset.id), options);
  });
  ui.historyMore.addEventListener("click", () => loadHistory({ append: true }));
  let searchTimer = 0;
  ui.search.addEventListener("input", () => {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(() => {
      state.search = ui.search.value.trim();
      loadHistory();
    }, 250);
  });
  ui.searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    window.clearTimeout(searchTimer);
    state.search = ui.search.value.trim();
    loadHistory();
  });

  ui.renameButton.addEventListener("click", openRename);
  ui.renameForm.addEventListener("submit", saveRename);
  ui.renameCancel.addEventListener("click", () => closeRename(true));
  ui.renameInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeRename(true);
    }
  });
  ui.deleteButton.addEventListener("click", askDelete);
  ui.deleteDialog.addEventListener("close", confirmDelete);
  for (const link of [ui.exportMd, ui.exportJson]) {
    link.addEventListener("click", () => {
      ui.exportMenu.open = false;
    });
  }
  document.addEventListener("click", (event) => {
    if (ui.exportMenu.open && !ui.exportMenu.contains(event.target)) ui.exportMenu.open = false;
  });

  ui.toggle.addEventListener("click", () => {
    if (ui.sidebar.classList.contains("open")) closeSidebar();
    else openSidebar();
  });
  ui.scrim.addEventListener("click", () => closeSidebar());
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (ui.exportMenu.open) {
      ui.exportMenu.open = false;
      ui.exportMenu.querySelector("summary").focus();
    } else if (ui.sidebar.classList.contains("open")) {
      closeSidebar();
    }
  });
  narrow.addEventListener("change", () => closeSidebar(false));

  // Back and forward between conversations: the address says which one is open.
  window.addEventListener("popstate", () => {
    const id = idFromPath(window.location.pathname);
    if (id) openConversation(id, { ...options, history: null, focus: false });
    else startNew({ ...options, history: null, focus: false });
  });

  window.addEventListener("offline", () =>
    showNotice("You're offline. You can keep typing; send when the connection is back.", "offline"),
  );
  window.addEventListener("online", () => clearNotice("offline"));
}

function start() {
  wire();
  updateCounter();
  refreshHistory();
  // /c/<id> opens that conversation (the server checked it is the visitor's); / reopens the one
  // that was open last, at its own address.
  const id = config.conversationId || idFromPath(window.location.pathname);
  if (id) {
    window.history.replaceState({ conversation: id }, "");
    openConversation(id, { focus: false, history: null });
    return;
  }
  window.history.replaceState({ conversation: null }, "");
  updateWelcome();
  const remembered = readJson(OPEN_KEY, null);
  if (Number.isInteger(remembered)) openConversation(remembered, { focus: false, history: "replace" });
}

if (app) start();
