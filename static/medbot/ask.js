/*
 * Asking: send the question, follow the answer's Server-Sent Events, and handle every way it can
 * end — answered, stopped, refused, interrupted.
 *
 * What the person typed is never lost: a question the server never took is put back in the box;
 * a question it took stays on the page, and its answer, if it did not finish, offers "Try again".
 */

import { ApiError, networkError, postForEvents, readEvents } from "./api.js";
import { pendingAnswer, questionNode, setQuestionTime, showDisclaimer, spokenAnswer } from "./answers.js";
import { closeRename, setConversation, startNew, refreshHistory } from "./conversation.js";
import { showInHistory } from "./history.js";
import { announce, clearNotice, config, reveal, showNotice, state, ui, updateWelcome } from "./page.js";

// After Stop, the server finishes the stopped answer's step before the conversation is free
// again (409 meanwhile): a new question then waits for it, this many times, a second apart.
const BUSY_RETRIES = 15;
const LOST = "The answer was interrupted: the connection to MedBot was lost.";

export function charCount(text) {
  return Array.from(text).length; // code points, as the server counts
}

export function updateCounter() {
  const count = charCount(ui.input.value);
  const max = config.maxChars;
  const over = count > max;
  ui.counter.textContent = over ? `${count} / ${max} · ${count - max} too many` : `${count} / ${max}`;
  ui.counter.classList.toggle("over", over);
  ui.counter.classList.toggle("near", !over && count > max * 0.9);
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

function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = window.setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      window.clearTimeout(timer);
      reject(new ApiError("aborted", "Stopped."));
    });
  });
}

/**
 * Send the question: the first of a conversation to /ask, which starts the conversation with
 * it (so a refused question leaves no empty conversation behind); later ones to the
 * conversation. A 409 just after Stop means the stopped answer is still being wound up.
 */
async function send(question, answer, signal) {
  const conversation = state.conversation;
  const [path, body] = conversation
    ? [`/conversations/${conversation.id}/messages/`, { content: question }]
    : ["/ask", { question }];
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await postForEvents(path, body, signal);
    } catch (error) {
      const justStopped = Date.now() - state.stoppedAt < 30_000;
      if (error.kind !== "busy" || !justStopped || attempt >= BUSY_RETRIES) throw error;
      answer.stage("waiting");
      await pause(1000, signal);
    }
  }
}

export async function ask(text) {
  const question = text.trim();
  if (state.busy || !question) return;
  if (Date.now() < state.waitUntil) return;
  if (charCount(question) > config.maxChars) {
    showNotice(`Your question is too long: please keep it to ${config.maxChars} characters.`);
    return;
  }
  clearNotice();
  closeRename();
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);

  const asked = questionNode(question, new Date().toISOString());
  const answer = pendingAnswer(question);
  ui.log.append(asked, answer.node);
  updateWelcome();
  state.follow = true;
  reveal(asked);
  ui.input.value = "";
  updateCounter();
  announce("Question sent. MedBot is preparing an answer.");

  let accepted = false; // the server took the question (it is saved)
  try {
    const response = await send(question, answer, controller.signal);
    accepted = true;
    let streamed = "";
    let saved = null;
    try {
      for await (const { event, data } of readEvents(response)) {
        if (event === "status") {
          if (data.conversation) {
            // Saved with the question: the conversation has its address and its title now.
            const fresh = !state.conversation;
            setConversation(data.conversation, { history: fresh ? "push" : null });
            showInHistory(data.conversation);
          }
          if (data.question) setQuestionTime(asked, data.question.created_at);
          // "received" (saved; triage runs), then the server's own steps: "sources", "writing".
          if (data.stage && data.stage !== "received") answer.stage(data.stage);
        } else if (event === "piece") {
          streamed += data.text || "";
          answer.showText(streamed);
          reveal(asked);
        } else if (event === "done") {
          saved = data;
        } else if (event === "error") {
          throw new ApiError("interrupted", data.detail || "The answer could not be completed.");
        }
      }
    } catch (error) {
      if (error instanceof ApiError) throw error;
      if (error && error.name === "AbortError") throw networkError(error);
      // The connection broke mid-answer (the server stopped, the network dropped).
      throw new ApiError("interrupted", LOST);
    }
    if (!saved) throw new ApiError("interrupted", LOST);
    // The saved message is the truth: the server may have trimmed or replaced the streamed text.
    answer.finish(saved);
    if (saved.disclaimer) showDisclaimer(saved.disclaimer);
    reveal(asked);
    // One announcement, when the answer is complete (an emergency answer is an alert already).
    if (saved.source !== "emergency") announce(spokenAnswer(saved));
    refreshHistory({ quiet: true });
  } catch (error) {
    handleAskError(error, { question, asked, answer, accepted });
  } finally {
    state.controller = null;
    setBusy(false);
    updateWelcome();
  }
}

function handleAskError(error, { question, asked, answer, accepted }) {
  if (error.kind === "aborted") {
    // The question stays on the page, whether or not it reached the server: Try again asks it again.
    answer.stopped();
    reveal(asked);
    announce("Stopped.");
    refreshHistory({ quiet: true }); // it may have been saved, and started a conversation
    return;
  }
  if (accepted || error.kind === "interrupted") {
    // The server took the question; the answer broke off. Keep what came, say so, offer Try again.
    answer.interrupted(error.message);
    reveal(asked);
    announce(error.message);
    refreshHistory({ quiet: true });
    return;
  }
  // Nothing reached the server: take the question back off the page and into the box.
  asked.remove();
  answer.node.remove();
  restoreQuestion(question);
  if (error.kind === "notfound") {
    startNew({ focus: false, history: "replace" });
    refreshHistory();
    showNotice("This conversation was deleted. Your question is still in the box: send it to start a new one.");
  } else if (error.kind === "rate") {
    showNotice(`${error.message} Your question is still in the box.`, "rate");
    rateLimited(error.retryAfter);
  } else {
    showNotice(`${error.message} Your question is still in the box.`, error.kind);
  }
}

export function stopAnswer() {
  if (state.controller) {
    state.stoppedAt = Date.now();
    state.controller.abort();
  }
}

/** "Try again": the same question, asked again in the open conversation. */
export function retry(question) {
  if (state.busy) return;
  ui.input.focus(); // the button that was clicked is gone or disabled now
  ask(question);
}
