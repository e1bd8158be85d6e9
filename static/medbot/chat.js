/*
 * MedBot's browser chat: plain JavaScript on top of the REST API (/api/v1/), no build step.
 *
 * Two rules shape this file:
 *  - Everything a server or model wrote is untrusted: it reaches the page through textContent
 *    and DOM nodes built here, never innerHTML. The Content-Security-Policy forbids inline
 *    scripts and styles as a second line of defence.
 *  - What the person typed is never lost: the textarea is cleared when a question is sent and
 *    put back whenever the question could not be answered.
 */
"use strict";

(() => {
  const app = document.getElementById("app");
  if (!app) return;

  const API = "/api/v1";
  const MAX_CHARS = Number(app.dataset.maxChars) || 2000;
  const EMERGENCY_NUMBER = app.dataset.emergencyNumber || "";
  const OPEN_KEY = "medbot.conversation"; // the id of the open conversation, across reloads
  const RATED_KEY = "medbot.rated"; // message id → rating, so a reload shows what was rated
  const SOURCE_LABELS = {
    model: "AI answer",
    extract: "From trusted sources",
    rule: "Curated answer",
    emergency: "Emergency",
    unavailable: "No reliable answer",
  };
  const REASONS = [
    ["", "Choose a reason (optional)"],
    ["wrong", "Incorrect"],
    ["unclear", "Unclear"],
    ["unsafe", "Unsafe"],
    ["off_topic", "Off topic"],
    ["other", "Other"],
  ];
  // Icon paths are constants of this file (Material Icons, Apache 2.0), never data.
  const ICONS = {
    copy: "M16 1H4c-1.1 0-2 .9-2 2v14h2V3h12V1zm3 4H8c-1.1 0-2 .9-2 2v14c0 1.1.9 2 2 2h11c1.1 0 2-.9 2-2V7c0-1.1-.9-2-2-2zm0 16H8V7h11v14z",
    up: "M2 21h4V9H2v12zm20-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L13.17 1 6.59 7.59C6.22 7.95 6 8.45 6 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
    down: "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 4.57-.03.32c0 .41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z",
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
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
    log: $("log"),
    notice: $("notice"),
    composer: $("composer"),
    input: $("question"),
    counter: $("char-count"),
    send: $("send"),
    stop: $("stop"),
    status: $("status"),
  };

  const state = {
    conversation: null, // {id, title} of the open conversation, or null for a new one
    busy: false, // an answer is on its way
    follow: true, // scroll along with the answer until the person scrolls themselves
    controller: null, // AbortController of the answer on its way
    waitUntil: 0, // rate limited until this time (ms since epoch)
    search: "",
    nextPage: null,
  };

  // --- small DOM helpers ------------------------------------------------------------------

  /** Build an element. `text` goes through textContent; children are nodes or plain strings. */
  function el(tag, options = {}, children = []) {
    const node = document.createElement(tag);
    if (options.className) node.className = options.className;
    if (options.text !== undefined) node.textContent = options.text;
    for (const [name, value] of Object.entries(options.attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function icon(name) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "icon");
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", ICONS[name]);
    path.setAttribute("fill", "currentColor");
    svg.append(path);
    return svg;
  }

  /**
   * Plain text to paragraphs, line breaks and lists, with DOM nodes only. Blank lines split
   * paragraphs; a block whose every line starts with "- ", "* " or "1." becomes a list.
   */
  function renderText(container, text) {
    container.replaceChildren();
    const bullet = /^\s*[-*•]\s+/;
    const numbered = /^\s*(\d{1,3})[.)]\s+/;
    for (const block of String(text).split(/\n\s*\n/)) {
      const lines = block.split("\n").filter((line) => line.trim() !== "");
      if (!lines.length) continue;
      if (lines.length > 1 && lines.every((line) => bullet.test(line))) {
        container.append(el("ul", {}, lines.map((line) => el("li", { text: line.replace(bullet, "") }))));
      } else if (lines.length > 1 && lines.every((line) => numbered.test(line))) {
        const start = Number(lines[0].match(numbered)[1]);
        const list = el("ol", { attrs: { start: start !== 1 ? start : null } });
        list.append(...lines.map((line) => el("li", { text: line.replace(numbered, "") })));
        container.append(list);
      } else {
        const paragraph = el("p");
        lines.forEach((line, index) => {
          if (index) paragraph.append(el("br"));
          paragraph.append(line);
        });
        container.append(paragraph);
      }
    }
  }

  function announce(message) {
    // Clearing first makes screen readers repeat a message that is the same as the last one.
    ui.status.textContent = "";
    window.setTimeout(() => {
      ui.status.textContent = message;
    }, 50);
  }

  function showNotice(message, kind = "error") {
    ui.notice.replaceChildren(el("span", { text: message }));
    ui.notice.dataset.kind = kind;
  }

  function clearNotice(kind) {
    if (kind && ui.notice.dataset.kind !== kind) return;
    ui.notice.replaceChildren();
    delete ui.notice.dataset.kind;
  }

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
  const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

  function shortDate(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    return date.toDateString() === new Date().toDateString() ? timeFormat.format(date) : dateFormat.format(date);
  }

  function readJson(key, fallback) {
    try {
      const value = JSON.parse(window.localStorage.getItem(key));
      return value === null ? fallback : value;
    } catch {
      return fallback; // storage disabled or corrupt: the chat works without it
    }
  }

  function writeJson(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, JSON.stringify(value));
    } catch {
      /* storage full or disabled: history still lives on the server */
    }
  }

  // --- the API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(kind, message, extra = {}) {
      super(message);
      this.kind = kind; // offline | network | aborted | rate | invalid | notfound | forbidden | server
      this.status = extra.status || 0;
      this.retryAfter = extra.retryAfter || 0;
      this.questionSaved = Boolean(extra.questionSaved);
    }
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function requestInit(method, body, accept, signal) {
    const headers = { Accept: accept };
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    };
  }

  function networkError(error) {
    if (error && error.name === "AbortError") return new ApiError("aborted", "Stopped.");
    if (error instanceof ApiError) return error;
    if (!navigator.onLine) {
      return new ApiError("offline", "You seem to be offline. Check your connection, then try again.");
    }
    return new ApiError("network", "MedBot could not be reached. Check your connection, then try again.");
  }

  function seconds(count) {
    return count === 1 ? "1 second" : `${count} seconds`;
  }

  /** A failed response as an ApiError with a message a person can act on. */
  async function errorFrom(response) {
    const status = response.status;
    const type = response.headers.get("Content-Type") || "";
    let data = null;
    try {
      const text = await response.text();
      if (type.includes("json")) data = JSON.parse(text);
      else if (type.includes("text/event-stream")) {
        const event = parseEvents(text).find((item) => item.event === "error");
        if (event) data = JSON.parse(event.data);
      }
    } catch {
      data = null; // an HTML error page or a cut-off body: the status says enough
    }
    const detail = data && typeof data.detail === "string" ? data.detail : "";
    if (status === 429) {
      const wait = Math.max(1, parseInt(response.headers.get("Retry-After"), 10) || 30);
      return new ApiError("rate", `You're asking too quickly. Please wait ${seconds(wait)}, then try again.`, {
        status,
        retryAfter: wait,
      });
    }
    if (status === 400 && data && typeof data === "object") {
      const messages = Object.values(data).flat().filter((item) => typeof item === "string");
      return new ApiError("invalid", messages.join(" ") || "MedBot could not accept that.", { status });
    }
    if (status === 404) return new ApiError("notfound", detail || "Not found.", { status });
    if (status === 403) {
      const expired = detail.includes("CSRF");
      const message = expired ? "Your session has expired. Reload the page, then try again." : detail || "Not allowed.";
      return new ApiError("forbidden", message, { status });
    }
    if (status === 503) {
      return new ApiError("server", detail || "MedBot is temporarily unavailable. Please try again shortly.", {
        status,
      });
    }
    return new ApiError("server", `MedBot had a problem on its side (error ${status}). Please try again in a moment.`, {
      status,
    });
  }

  async function api(path, { method = "GET", body, signal } = {}) {
    let response;
    try {
      response = await fetch(API + path, requestInit(method, body, "application/json", signal));
    } catch (error) {
      throw networkError(error);
    }
    if (!response.ok) throw await errorFrom(response);
    return response.status === 204 ? null : response.json();
  }

  function parseBlock(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    return data.length ? { event, data: data.join("\n") } : null;
  }

  function parseEvents(text) {
    return text
      .split("\n\n")
      .map(parseBlock)
      .filter((item) => item !== null);
  }

  /** Server-Sent Events from a fetch() response body, as they arrive. */
  async function* readEvents(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = parseBlock(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (event) yield event;
      }
    }
  }

  // --- messages ---------------------------------------------------------------------------

  function userNode(text) {
    const body = el("div", { className: "message-body" });
    renderText(body, text);
    return el("article", { className: "message question", attrs: { "aria-label": "Your question" } }, [body]);
  }

  function typingNode() {
    return el("div", { className: "typing" }, [
      el("span", { className: "visually-hidden", text: "MedBot is writing an answer…" }),
      el("span", { className: "dot", attrs: { "aria-hidden": "true" } }),
      el("span", { className: "dot", attrs: { "aria-hidden": "true" } }),
      el("span", { className: "dot", attrs: { "aria-hidden": "true" } }),
    ]);
  }

  /** An assistant answer, pending (streaming) until `finish` gives it the saved message. */
  function answerNode() {
    const article = el("article", {
      className: "message answer pending",
      attrs: { "aria-label": "MedBot's answer", "aria-busy": "true" },
    });
    const body = el("div", { className: "message-body" });
    const typing = typingNode();
    article.append(typing, body);

    return {
      node: article,
      hasText: () => body.childNodes.length > 0,
      showText(text) {
        typing.remove();
        renderText(body, text);
      },
      finish(message) {
        fillAnswer(article, message);
      },
      stopped() {
        typing.remove();
        article.classList.remove("pending");
        article.removeAttribute("aria-busy");
        article.append(el("p", { className: "message-note", text: "You stopped this answer before it finished." }));
      },
      failed(message) {
        typing.remove();
        article.classList.remove("pending");
        article.classList.add("failed");
        article.removeAttribute("aria-busy");
        article.append(el("p", { className: "message-note", text: message }));
      },
    };
  }

  /** A web address safe to link to: http(s) only, never javascript: or data:. */
  function safeUrl(url) {
    try {
      const parsed = new URL(url);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch {
      return null;
    }
  }

  /** The sources an answer came from, as a list of links (text only, built without innerHTML). */
  function citationList(citations) {
    if (!Array.isArray(citations) || citations.length === 0) return null;
    const items = citations.map((citation) => {
      const title = String(citation.title || "Source");
      const url = safeUrl(String(citation.url || ""));
      const name = url
        ? el("a", { text: title, attrs: { href: url, target: "_blank", rel: "noopener noreferrer" } })
        : el("span", { text: title });
      const publisher = citation.publisher ? ` (${citation.publisher})` : "";
      return el("li", {}, [name, publisher]);
    });
    return el("div", { className: "citations" }, [
      el("p", { className: "citations-label", text: "Sources" }),
      el("ul", {}, items),
    ]);
  }

  /** (Re)build an answer article from a saved assistant message. */
  function fillAnswer(article, message) {
    const source = SOURCE_LABELS[message.source] ? message.source : "unavailable";
    article.className = `message answer source-${source}`;
    article.removeAttribute("aria-busy");
    article.dataset.id = message.id;
    article.replaceChildren();

    const label = el("span", { className: `badge badge-${source}`, text: SOURCE_LABELS[source] });
    const head = el("div", { className: "message-head" }, [label]);
    if (source === "rule" && message.matched_rule) {
      head.append(el("span", { className: "topic", text: message.matched_rule }));
    }
    article.append(head);

    if (source === "emergency") {
      // The emergency number comes first and loudest; role=alert interrupts a screen reader.
      article.setAttribute("role", "alert");
      article.setAttribute("aria-label", "Emergency advice");
      const number = EMERGENCY_NUMBER;
      const call = el("p", { className: "call-line" }, [
        "Call ",
        el("a", { text: number, attrs: { href: `tel:${number.replace(/[^\d+]/g, "")}` } }),
        " now",
      ]);
      article.append(call);
    }

    if (message.triage_level === "urgent") {
      article.append(
        el("p", { className: "urgent-banner", attrs: { role: "note" } }, [
          el("strong", { text: "Get checked today. " }),
          message.triage_note || "See a doctor or urgent care today: what you describe should be checked in person soon.",
        ]),
      );
    }

    const body = el("div", { className: "message-body" });
    renderText(body, message.content);
    article.append(body);
    const sources = citationList(message.citations);
    if (sources) article.append(sources);
    if (message.partial) {
      article.append(el("p", { className: "message-note", text: "This answer was stopped before it finished." }));
    }
    if (message.disclaimer) {
      article.append(el("p", { className: "message-disclaimer", text: message.disclaimer }));
    }
    article.append(answerActions(message));
  }

  function answerActions(message) {
    const copy = el("button", { className: "chip copy", attrs: { type: "button" } }, [
      icon("copy"),
      el("span", { text: "Copy" }),
    ]);
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
    const group = el("div", { className: "feedback", attrs: { role: "group", "aria-label": "Rate this answer" } }, [
      up,
      down,
      thanks,
    ]);
    const bar = el("div", { className: "message-actions" }, [copy, group]);
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

  /**
   * Keep the latest exchange in view: scroll towards the end, but never so far that the question
   * leaves the top of the view (a long answer is read from its start). Stops following once the
   * person scrolls by themselves.
   */
  function reveal(question) {
    if (!state.follow) return;
    const scroller = ui.scroller;
    const end = scroller.scrollHeight - scroller.clientHeight;
    const questionTop = question ? question.offsetTop - 12 : end;
    scroller.scrollTop = Math.max(0, Math.min(questionTop, end));
  }

  function stopFollowing(event) {
    if (event.type !== "keydown" || ["PageUp", "PageDown", "ArrowUp", "ArrowDown", "Home", "End"].includes(event.key)) {
      state.follow = false;
    }
  }

  function updateWelcome() {
    ui.welcome.hidden = ui.log.childElementCount > 0;
  }

  function renderMessages(messages) {
    ui.log.replaceChildren();
    for (const message of messages) {
      if (message.role === "user") {
        ui.log.append(userNode(message.content));
      } else {
        const article = el("article");
        fillAnswer(article, message);
        ui.log.append(article);
      }
    }
    updateWelcome();
    state.follow = true;
    const questions = ui.log.querySelectorAll(".question");
    reveal(questions[questions.length - 1]);
  }

  // --- the open conversation ----------------------------------------------------------------

  function setConversation(conversation) {
    state.conversation = conversation ? { id: conversation.id, title: conversation.title || "" } : null;
    writeJson(OPEN_KEY, conversation ? conversation.id : null);
    renderTitle();
    if (conversation) {
      const base = `${API}/conversations/${conversation.id}/export`;
      ui.exportMd.href = `${base}?format=md`;
      ui.exportJson.href = `${base}?format=json`;
    }
    ui.actions.hidden = !conversation;
    for (const item of ui.historyList.querySelectorAll("button.history-item")) {
      const current = conversation && item.dataset.id === String(conversation.id);
      if (current) item.setAttribute("aria-current", "page");
      else item.removeAttribute("aria-current");
    }
  }

  function renderTitle() {
    const conversation = state.conversation;
    ui.title.textContent = conversation ? conversation.title || "Untitled conversation" : "New conversation";
    document.title = conversation && conversation.title ? `${conversation.title} · MedBot` : "MedBot";
  }

  function startNew({ focus = true } = {}) {
    if (state.busy) stopAnswer();
    closeRename();
    setConversation(null);
    ui.log.replaceChildren();
    updateWelcome();
    clearNotice();
    closeSidebar(false);
    if (focus) ui.input.focus();
  }

  async function openConversation(id, { focus = true } = {}) {
    if (state.busy) stopAnswer();
    closeRename();
    let conversation;
    try {
      conversation = await api(`/conversations/${id}/`);
    } catch (error) {
      if (error.kind === "notfound") {
        // Deleted elsewhere, or it belonged to a session that ended: start afresh.
        if (state.conversation && state.conversation.id === id) startNew({ focus: false });
        writeJson(OPEN_KEY, null);
        loadHistory();
        if (focus) showNotice("That conversation no longer exists.");
        return;
      }
      showNotice(`The conversation could not be opened: ${error.message}`);
      return;
    }
    clearNotice();
    setConversation(conversation);
    renderMessages(conversation.messages || []);
    closeSidebar(false);
    if (focus) ui.title.focus();
  }

  // --- asking ---------------------------------------------------------------------------------

  function charCount(text) {
    return Array.from(text).length; // code points, as the server counts
  }

  function updateCounter() {
    const count = charCount(ui.input.value);
    const over = count > MAX_CHARS;
    ui.counter.textContent = over ? `${count} / ${MAX_CHARS} · ${count - MAX_CHARS} too many` : `${count} / ${MAX_CHARS}`;
    ui.counter.classList.toggle("over", over);
    ui.counter.classList.toggle("near", !over && count > MAX_CHARS * 0.9);
    if (over) ui.input.setAttribute("aria-invalid", "true");
    else ui.input.removeAttribute("aria-invalid");
  }

  function setBusy(busy) {
    state.busy = busy;
    const stopHadFocus = document.activeElement === ui.stop;
    const sendHadFocus = document.activeElement === ui.send;
    ui.stop.hidden = !busy;
    ui.send.hidden = busy;
    ui.composer.classList.toggle("busy", busy);
    if (stopHadFocus || sendHadFocus) ui.input.focus();
  }

  function restoreQuestion(text) {
    // Never overwrite something new the person has started typing.
    if (!ui.input.value.trim()) {
      ui.input.value = text;
      updateCounter();
    }
  }

  function rateLimited(waitSeconds) {
    state.waitUntil = Date.now() + waitSeconds * 1000;
    tickWait();
  }

  function tickWait() {
    const left = Math.ceil((state.waitUntil - Date.now()) / 1000);
    if (left > 0) {
      ui.send.disabled = true;
      ui.send.textContent = `Wait ${left} s`;
      window.setTimeout(tickWait, 1000);
    } else {
      ui.send.disabled = false;
      ui.send.textContent = "Send";
      clearNotice("rate");
    }
  }

  async function ask(text) {
    const question = text.trim();
    if (state.busy || !question) return;
    if (Date.now() < state.waitUntil) return;
    if (charCount(question) > MAX_CHARS) {
      showNotice(`Your question is too long: please keep it to ${MAX_CHARS} characters.`);
      return;
    }
    clearNotice();
    closeRename();
    const controller = new AbortController();
    state.controller = controller;
    setBusy(true);

    const asked = userNode(question);
    const answer = answerNode();
    ui.log.append(asked, answer.node);
    updateWelcome();
    state.follow = true;
    reveal(asked);
    ui.input.value = "";
    updateCounter();

    let questionSaved = false;
    try {
      if (!state.conversation) {
        const created = await api("/conversations/", { method: "POST", body: {}, signal: controller.signal });
        setConversation(created);
      }
      const conversationId = state.conversation.id;
      let response;
      try {
        response = await fetch(
          `${API}/conversations/${conversationId}/messages/`,
          requestInit("POST", { content: question }, "text/event-stream", controller.signal),
        );
      } catch (error) {
        throw networkError(error);
      }
      if (!response.ok) throw await errorFrom(response);
      questionSaved = true;

      let streamed = "";
      let saved = null;
      try {
        for await (const event of readEvents(response)) {
          if (event.event === "piece") {
            streamed += JSON.parse(event.data).text || "";
            answer.showText(streamed);
            reveal(asked);
          } else if (event.event === "done") {
            saved = JSON.parse(event.data);
          } else if (event.event === "error") {
            const detail = JSON.parse(event.data).detail;
            throw new ApiError("server", detail || "The answer could not be completed.");
          }
        }
      } catch (error) {
        throw networkError(error);
      }
      if (!saved) throw new ApiError("network", "The answer was cut off. Your question was saved; please try again.");
      // The saved message is the truth: the server may have trimmed or replaced the streamed text.
      answer.finish(saved);
      reveal(asked);
      loadHistory();
    } catch (error) {
      handleAskError(error, { question, asked, answer, questionSaved });
    } finally {
      state.controller = null;
      setBusy(false);
      updateWelcome();
    }
  }

  function handleAskError(error, { question, asked, answer, questionSaved }) {
    if (error.kind === "aborted") {
      if (answer.hasText()) answer.stopped();
      else answer.node.remove();
      if (!questionSaved) asked.remove();
      if (questionSaved) loadHistory();
      announce("Stopped.");
      return;
    }
    if (questionSaved) {
      answer.failed("No answer: see the message below.");
      loadHistory();
    } else {
      // Nothing reached the server: take the question back off the page and into the box.
      asked.remove();
      answer.node.remove();
    }
    restoreQuestion(question);
    if (error.kind === "notfound") {
      setConversation(null);
      ui.log.replaceChildren();
      loadHistory();
      showNotice("This conversation was deleted. Your question is still in the box: send it to start a new one.");
    } else if (error.kind === "rate") {
      showNotice(`${error.message} Your question is still in the box.`, "rate");
      rateLimited(error.retryAfter);
    } else {
      showNotice(`${error.message} Your question is still in the box.`, error.kind);
    }
  }

  function stopAnswer() {
    if (state.controller) state.controller.abort();
  }

  // --- history ------------------------------------------------------------------------------

  let historyRequest = 0;

  async function loadHistory({ append = false } = {}) {
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
      if (ticket === historyRequest) showNotice(`Your conversations could not be loaded: ${error.message}`, "history");
      return;
    }
    if (ticket !== historyRequest) return;
    clearNotice("history");
    if (!append) ui.historyList.replaceChildren();
    for (const conversation of page.results) ui.historyList.append(historyItem(conversation));
    state.nextPage = page.next;
    ui.historyMore.hidden = !page.next;
    const empty = ui.historyList.childElementCount === 0;
    ui.historyEmpty.hidden = !empty;
    ui.historyEmpty.textContent = state.search ? "No conversation titles match." : "No conversations yet.";
    const open = state.conversation && page.results.find((item) => item.id === state.conversation.id);
    if (open && open.title !== state.conversation.title) {
      state.conversation.title = open.title;
      renderTitle();
    }
  }

  function historyItem(conversation) {
    const when = el("time", { className: "when", text: shortDate(conversation.updated_at) });
    when.dateTime = conversation.updated_at;
    const button = el("button", { className: "history-item", attrs: { type: "button" } }, [
      el("span", { className: "history-title", text: conversation.title || "Untitled conversation" }),
      when,
    ]);
    button.dataset.id = conversation.id;
    if (state.conversation && state.conversation.id === conversation.id) button.setAttribute("aria-current", "page");
    button.addEventListener("click", () => openConversation(conversation.id));
    return el("li", {}, [button]);
  }

  // --- rename, delete, export ---------------------------------------------------------------

  function openRename() {
    if (!state.conversation) return;
    ui.renameInput.value = state.conversation.title;
    ui.title.hidden = true;
    ui.actions.hidden = true;
    ui.renameForm.hidden = false;
    ui.renameInput.focus();
    ui.renameInput.select();
  }

  function closeRename(focusButton = false) {
    if (ui.renameForm.hidden) return;
    ui.renameForm.hidden = true;
    ui.title.hidden = false;
    ui.actions.hidden = !state.conversation;
    if (focusButton) ui.renameButton.focus();
  }

  async function saveRename(event) {
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
    closeRename(true);
    announce("Conversation renamed.");
    loadHistory();
  }

  function askDelete() {
    if (!state.conversation) return;
    ui.deleteName.textContent = `“${state.conversation.title || "Untitled conversation"}”`;
    ui.deleteDialog.returnValue = "";
    ui.deleteDialog.showModal();
  }

  async function confirmDelete() {
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
    startNew();
    announce("Conversation deleted.");
    loadHistory();
  }

  // --- the sidebar on narrow screens ------------------------------------------------------------

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

  // --- wiring ---------------------------------------------------------------------------------

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

  ui.newButton.addEventListener("click", () => startNew());
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

  window.addEventListener("offline", () =>
    showNotice("You're offline. You can keep typing; send when the connection is back.", "offline"),
  );
  window.addEventListener("online", () => clearNotice("offline"));

  updateCounter();
  updateWelcome();
  loadHistory();
  const remembered = readJson(OPEN_KEY, null);
  if (Number.isInteger(remembered)) openConversation(remembered, { focus: false });
})();
