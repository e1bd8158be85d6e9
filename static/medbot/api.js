/*
 * The REST API (/api/v1/) as the chat uses it: JSON requests, and answers streamed as
 * Server-Sent Events over fetch(). Failures become ApiErrors with a message a person can act on.
 */

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(kind, message, extra = {}) {
    super(message);
    // offline | network | aborted | rate | invalid | notfound | forbidden | busy | server | interrupted
    this.kind = kind;
    this.status = extra.status || 0;
    this.retryAfter = extra.retryAfter || 0;
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

export function networkError(error) {
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
  if (status === 409) return new ApiError("busy", detail || "MedBot is still answering.", { status });
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

/** A JSON request; resolves to the decoded body (null for 204), rejects with an ApiError. */
export async function api(path, { method = "GET", body, signal } = {}) {
  let response;
  try {
    response = await fetch(API + path, requestInit(method, body, "application/json", signal));
  } catch (error) {
    throw networkError(error);
  }
  if (!response.ok) throw await errorFrom(response);
  return response.status === 204 ? null : response.json();
}

/** POST that answers with Server-Sent Events; resolves to the open response once it is accepted. */
export async function postForEvents(path, body, signal) {
  let response;
  try {
    response = await fetch(API + path, requestInit("POST", body, "text/event-stream", signal));
  } catch (error) {
    throw networkError(error);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

/** Server-Sent Events from a fetch() response body, as they arrive ({event, data} with data parsed). */
export async function* readEvents(response) {
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
      if (event) yield { event: event.event, data: JSON.parse(event.data) };
    }
  }
}
