// The gateway's public HTTP API, as the page uses it. Signing in sets an HttpOnly session cookie,
// and the browser sends it with every same-origin request (fetch, XMLHttpRequest, <img>, <video>,
// EventSource): the page itself never sees or stores a secret.

export class ApiError extends Error {
  /** status 0 means the server could not be reached at all. */
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }

  /** Not signed in (or no longer): the answer is to sign in, not to try again. */
  get unauthorized() {
    return this.status === 401;
  }
}

export const UNREACHABLE = "Cannot reach the mediasearch server. Check that it is running, then try again.";
export const SIGN_IN_FIRST = "Sign in first.";

// Called when a signed-in request is answered 401: the session ended (it expired, or this account
// signed out or was removed elsewhere). app.js shows the sign-in form.
let signedOutHandler = () => {};

export function onSignedOut(handler) {
  signedOutHandler = handler;
}

function noticeSignedOut(status, anonymous) {
  if (status === 401 && !anonymous) signedOutHandler();
}

/** Absolute URL for an API path (paths from the API start with "/"; ours are relative to the page). */
export function apiUrl(path, params = {}) {
  const url = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  return url;
}

/**
 * A readable sentence for a failed request. The gateway answers every error with {"detail": "<sentence>"};
 * anything else (no body, or a proxy's page in front of it) gets a sentence from the status alone.
 */
export function describeError(body, status, statusText = "") {
  if (body && typeof body.detail === "string" && body.detail) return body.detail;
  if (status === 401) return SIGN_IN_FIRST;
  if (status === 403) return "Your account is not allowed to do that.";
  if (status === 413) return "Too large for the server to accept.";
  if (status === 429) return "Too many attempts. Wait a moment, then try again.";
  if (status >= 500) return `The server had a problem (HTTP ${status}). Try again in a moment.`;
  return `Request failed (HTTP ${status}${statusText ? ` ${statusText}` : ""}).`;
}

/** The JSON of a response's text, or null when there is none or it is not JSON. */
function parseJson(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

async function readBody(response) {
  return parseJson(await response.text());
}

/**
 * fetch + JSON + readable errors. Throws ApiError; an aborted request rethrows the AbortError.
 * anonymous: a request made while signed out (sign-in, setup, "who am I?"), whose 401 is an answer
 * (wrong password, no session yet) rather than news that the session ended.
 */
export async function apiFetch(path, { method = "GET", params, body, signal, anonymous = false } = {}) {
  let response;
  try {
    response = await fetch(apiUrl(path, params), { method, body, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(UNREACHABLE, 0);
  }
  const data = await readBody(response);
  if (!response.ok) {
    noticeSignedOut(response.status, anonymous);
    throw new ApiError(describeError(data, response.status, response.statusText), response.status);
  }
  return data;
}

/** The health document even when the gateway answers 503 (degraded still has a body). */
export async function fetchHealth() {
  let response;
  try {
    response = await fetch(apiUrl("health"), { cache: "no-store" });
  } catch {
    throw new ApiError(UNREACHABLE, 0);
  }
  const data = await readBody(response);
  if (data && Array.isArray(data.services)) return data;
  // Without a session the gateway says only whether it is up ({"status": ...}): the session is gone.
  const signedOut = response.status === 401 || (data && typeof data.status === "string");
  if (signedOut) {
    noticeSignedOut(401, false);
    throw new ApiError(SIGN_IN_FIRST, 401);
  }
  throw new ApiError(describeError(data, response.status, response.statusText), response.status);
}

/**
 * Upload files in one multipart request; each part's filename is the file's path relative to the
 * chosen folder. Returns {promise, abort}; onProgress(loadedBytes, totalBytes) follows the request body.
 */
export function uploadFiles(entries, { folder, onProgress } = {}) {
  const xhr = new XMLHttpRequest();
  const form = new FormData();
  for (const { file, path } of entries) form.append("files", file, path);
  if (folder) form.append("folder", folder);

  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", apiUrl("uploads"));
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && onProgress) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      const data = parseJson(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300 && data && data.job_id) resolve(data);
      else {
        noticeSignedOut(xhr.status, false);
        reject(new ApiError(describeError(data, xhr.status, xhr.statusText), xhr.status));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(UNREACHABLE, 0)));
    xhr.addEventListener("abort", () => reject(new DOMException("Upload cancelled", "AbortError")));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}
