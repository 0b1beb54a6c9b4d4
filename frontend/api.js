// The gateway's public HTTP API, as the page uses it. Every request carries the API key (header
// X-API-Key) when one is set. The browser cannot add headers to <img>, <video> or EventSource
// requests, so startSession() trades the key for an HttpOnly cookie that the server accepts for reads.

const API_KEY_STORAGE = "mediasearch.apiKey";

export function getApiKey() {
  try {
    return localStorage.getItem(API_KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setApiKey(key) {
  if (key) localStorage.setItem(API_KEY_STORAGE, key);
  else localStorage.removeItem(API_KEY_STORAGE);
}

export class ApiError extends Error {
  /** status 0 means the server could not be reached at all. */
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }

  get unauthorized() {
    return this.status === 401 || this.status === 403;
  }
}

export const UNREACHABLE = "Cannot reach the mediasearch server. Check that it is running, then try again.";

/** Absolute URL for an API path (paths from the API start with "/"; ours are relative to the page). */
export function apiUrl(path, params = {}) {
  const url = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  return url;
}

function authHeaders() {
  const key = getApiKey();
  return key ? { "X-API-Key": key } : {};
}

/**
 * A readable sentence for a failed request. The gateway answers every error with {"detail": "<sentence>"};
 * anything else (no body, or a proxy's page in front of it) gets a sentence from the status alone.
 */
export function describeError(body, status, statusText = "") {
  if (body && typeof body.detail === "string" && body.detail) return body.detail;
  if (status === 401 || status === 403) return "The server needs a valid API key (open Settings).";
  if (status === 413) return "Too large for the server to accept.";
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

/** fetch + JSON + readable errors. Throws ApiError; an aborted request rethrows the AbortError. */
export async function apiFetch(path, { method = "GET", params, body, signal } = {}) {
  let response;
  try {
    response = await fetch(apiUrl(path, params), { method, body, signal, headers: authHeaders() });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(UNREACHABLE, 0);
  }
  const data = await readBody(response);
  if (!response.ok) throw new ApiError(describeError(data, response.status, response.statusText), response.status);
  return data;
}

/** With an API key set, get the media cookie; without one there is nothing to do. */
export async function startSession() {
  if (getApiKey()) await apiFetch("session", { method: "POST" });
}

/** The health document even when the gateway answers 503 (degraded still has a body). */
export async function fetchHealth() {
  let response;
  try {
    response = await fetch(apiUrl("health"), { headers: authHeaders(), cache: "no-store" });
  } catch {
    throw new ApiError(UNREACHABLE, 0);
  }
  const data = await readBody(response);
  if (data && Array.isArray(data.services)) return data;
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
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && onProgress) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      const data = parseJson(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300 && data && data.job_id) resolve(data);
      else reject(new ApiError(describeError(data, xhr.status, xhr.statusText), xhr.status));
    });
    xhr.addEventListener("error", () => reject(new ApiError(UNREACHABLE, 0)));
    xhr.addEventListener("abort", () => reject(new DOMException("Upload cancelled", "AbortError")));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}
