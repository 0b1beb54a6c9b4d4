// Folder upload: the folder picker, drag and drop of folders (walking directories and keeping
// relative paths) and one XMLHttpRequest per batch with live byte and file progress.

import { uploadFiles } from "./api.js";
import { el, formatBytes, plural } from "./format.js";

// One request per batch keeps each request well under the server's per-request limits.
const BATCH_MAX_FILES = 500;
const BATCH_MAX_BYTES = 512 * 1024 * 1024;

const IMAGE_EXTENSIONS = /\.(jpe?g|png|gif|webp|bmp|tiff?|heic|heif|avif)$/i;

export function looksLikeImage(file) {
  return (file.type || "").startsWith("image/") || IMAGE_EXTENSIONS.test(file.name);
}

function isHidden(path) {
  return path.split("/").some((part) => part.startsWith("."));
}

/** Files from an <input type=file> (webkitdirectory or plain multiple). */
export function entriesFromInput(fileList) {
  return Array.from(fileList, (file) => ({ file, path: file.webkitRelativePath || file.name }));
}

function readAllEntries(reader) {
  // readEntries hands out a directory in chunks (100 in Chromium) until it returns an empty list.
  return new Promise((resolve, reject) => {
    const all = [];
    const next = () =>
      reader.readEntries((batch) => {
        if (batch.length === 0) resolve(all);
        else {
          all.push(...batch);
          next();
        }
      }, reject);
    next();
  });
}

async function walkEntry(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: entry.fullPath.replace(/^\/+/, "") });
  } else if (entry.isDirectory) {
    for (const child of await readAllEntries(entry.createReader())) await walkEntry(child, out);
  }
}

/**
 * The files of a drop, directories walked, each with its path relative to the drop.
 * Entries must be taken synchronously: the DataTransfer empties once the drop handler returns.
 */
export function collectDropped(dataTransfer) {
  const roots = [];
  const loose = [];
  for (const item of Array.from(dataTransfer.items || [])) {
    if (item.kind !== "file") continue;
    const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (entry) roots.push(entry);
    else {
      const file = item.getAsFile();
      if (file) loose.push({ file, path: file.name });
    }
  }
  if (!roots.length && !loose.length) {
    for (const file of Array.from(dataTransfer.files || [])) loose.push({ file, path: file.name });
  }
  const hasDirectory = roots.some((entry) => entry.isDirectory);
  const done = (async () => {
    const out = [...loose];
    for (const entry of roots) await walkEntry(entry, out);
    return out;
  })();
  return { hasDirectory, files: done };
}

function splitBatches(entries) {
  const batches = [];
  let current = [];
  let bytes = 0;
  for (const entry of entries) {
    if (current.length && (current.length >= BATCH_MAX_FILES || bytes + entry.file.size > BATCH_MAX_BYTES)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += entry.file.size;
  }
  if (current.length) batches.push(current);
  return batches;
}

/** The common first folder of every path, used as the job's folder label. */
function commonFolder(entries) {
  const tops = new Set(entries.map(({ path }) => (path.includes("/") ? path.split("/")[0] : "")));
  return tops.size === 1 ? [...tops][0] : "";
}

/** Sends files and reports progress in its panel; one upload at a time. */
export class Uploader {
  constructor(panel, { onJobCreated, notify }) {
    this.panel = panel;
    this.onJobCreated = onJobCreated;
    this.notify = notify;
    this.current = null;
  }

  get busy() {
    return this.current !== null;
  }

  async upload(rawEntries) {
    if (this.busy) {
      this.notify("An upload is still running: wait for it to finish, or cancel it, before adding more.");
      return;
    }
    const entries = rawEntries.filter(({ path }) => !isHidden(path));
    const skipped = rawEntries.length - entries.length;
    if (!entries.length) {
      this.showMessage(rawEntries.length ? "Only hidden files there: nothing to upload." : "That folder is empty.", "error");
      return;
    }
    const folder = commonFolder(entries);
    const totalBytes = entries.reduce((sum, { file }) => sum + file.size, 0);
    const batches = splitBatches(entries);
    const view = this.renderProgress(entries.length, totalBytes, folder);
    let sentBytes = 0;
    let sentFiles = 0;
    const jobIds = [];
    this.current = { abort: () => {} };
    try {
      for (const batch of batches) {
        const ends = []; // where each file of the batch ends, in bytes from the batch's start
        let batchBytes = 0;
        for (const { file } of batch) ends.push((batchBytes += file.size));
        const request = uploadFiles(batch, {
          folder,
          onProgress: (loaded, total) => {
            // The body is the files in order plus multipart overhead: scale to our own byte count.
            const filesBytes = Math.min(batchBytes, (loaded / total) * batchBytes);
            let index = ends.findIndex((end) => end > filesBytes);
            if (index < 0) index = batch.length - 1;
            view.update(sentBytes + filesBytes, sentFiles + index, batch[index].path);
          },
        });
        this.current.abort = request.abort;
        const { job_id: jobId } = await request.promise;
        jobIds.push(jobId);
        this.onJobCreated(jobId);
        sentBytes += batchBytes;
        sentFiles += batch.length;
        view.update(sentBytes, sentFiles, null);
      }
      const skippedNote = skipped ? ` (${plural(skipped, "hidden file")} skipped)` : "";
      view.finish(`Uploaded ${plural(entries.length, "file")}${skippedNote}. Indexing runs in the jobs below.`, "ok");
    } catch (error) {
      const what = error.name === "AbortError" ? "Upload cancelled." : `Upload failed: ${error.message}`;
      const partial = sentFiles ? ` ${plural(sentFiles, "file")} had already been sent and will be indexed.` : "";
      view.finish(what + partial, "error");
    } finally {
      this.current = null;
    }
  }

  cancel() {
    if (this.current) this.current.abort();
  }

  showMessage(text, tone) {
    this.panel.hidden = false;
    this.panel.replaceChildren(el("p", { class: `upload-message ${tone}`, role: tone === "error" ? "alert" : null }, text));
  }

  renderProgress(fileCount, totalBytes, folder) {
    const title = el("p", { class: "upload-title" },
      el("strong", {}, `Uploading ${plural(fileCount, "file")}`),
      folder ? ` from ${folder}` : "");
    const fill = el("div", { class: "bar-fill" });
    const bar = el("div", {
      class: "bar", role: "progressbar", "aria-label": "Upload progress",
      "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0",
    }, fill);
    const counts = el("p", { class: "upload-counts" });
    const currentFile = el("p", { class: "upload-current" });
    const cancel = el("button", { type: "button", class: "button small", onclick: () => this.cancel() }, "Cancel upload");
    this.panel.hidden = false;
    this.panel.replaceChildren(title, bar, counts, currentFile, cancel);

    const update = (bytes, filesDone, path) => {
      const percent = totalBytes ? Math.min(100, (bytes / totalBytes) * 100) : 100;
      fill.style.width = `${percent}%`;
      bar.setAttribute("aria-valuenow", String(Math.round(percent)));
      counts.textContent = `${formatBytes(bytes)} of ${formatBytes(totalBytes)} · ${Math.round(percent)}%`;
      currentFile.textContent = path ? `File ${Math.min(filesDone + 1, fileCount)} of ${fileCount}: ${path}` : `${filesDone} of ${fileCount} files sent`;
    };
    update(0, 0, null);
    return {
      update,
      finish: (message, tone) => {
        cancel.remove();
        currentFile.remove();
        title.replaceChildren(el("span", { class: `upload-message ${tone}`, role: tone === "error" ? "alert" : null }, message));
      },
    };
  }
}
