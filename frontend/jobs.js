// The jobs panel: recent jobs with live progress from server-sent events, falling back to polling
// when the event stream is unavailable; and how far the text in their media has been read (OCR), which
// goes on in the background after a job is done (then polled until every file is read).

import { apiFetch, apiUrl } from "./api.js";
import { el, formatAge, plural } from "./format.js";

const FINISHED = new Set(["done", "failed", "cancelled"]);
const POLL_MS = 1000;
const POLL_MAX_MS = 10000;
const TEXT_POLL_MS = 2000;
const STATUS_LABELS = { queued: "Queued", running: "Indexing", done: "Done", failed: "Failed", cancelled: "Cancelled" };

export const isFinished = (job) => FINISHED.has(job.status);
/** The text in the job's media is still being read (null `text`: OCR is off). */
export const isReadingText = (job) => Boolean(job.text && job.text.waiting > 0);
/** Nothing more to follow: indexed, and its text read. */
const isSettled = (job) => isFinished(job) && !isReadingText(job);

export class JobsPanel {
  constructor({ list, empty, onFinished, onTextRead = () => {}, onError }) {
    this.list = list;
    this.empty = empty;
    this.onFinished = onFinished;
    this.onTextRead = onTextRead;
    this.onError = onError;
    this.jobs = new Map(); // id -> {job, view, stop}
    // Keep "5 min ago" true while the page stays open.
    setInterval(() => this.jobs.forEach(({ job, view }) => view.render(job)), 60_000);
  }

  async load() {
    const { jobs } = await apiFetch("jobs");
    // Oldest first so the newest ends up on top.
    for (const job of [...jobs].sort((a, b) => a.created_at - b.created_at)) this.show(job);
    return jobs;
  }

  folders() {
    return [...new Set([...this.jobs.values()].map(({ job }) => job.folder).filter(Boolean))];
  }

  /** Start following a job we only know the id of (right after an upload). */
  async track(jobId) {
    try {
      this.show(await apiFetch(`jobs/${encodeURIComponent(jobId)}`));
    } catch (error) {
      this.onError(`Could not read job ${jobId}: ${error.message}`);
    }
  }

  show(job) {
    const known = this.jobs.get(job.id);
    if (known) {
      this.update(job);
      return;
    }
    const entry = { job, view: this.createView(job), stop: null };
    this.jobs.set(job.id, entry);
    this.list.prepend(entry.view.root);
    this.empty.hidden = true;
    entry.view.render(job);
    if (!isFinished(job)) this.follow(entry);
    else if (isReadingText(job)) this.poll(entry, TEXT_POLL_MS);
  }

  update(job) {
    const entry = this.jobs.get(job.id);
    if (!entry) return;
    const wasFinished = isFinished(entry.job);
    const wasReading = isReadingText(entry.job);
    entry.job = job;
    entry.view.render(job);
    if (isFinished(job) && !wasFinished) {
      if (entry.stop) entry.stop(); // the event stream ends with the job: the text is polled after it
      entry.stop = null;
      this.onFinished(job);
      if (isReadingText(job)) this.poll(entry, TEXT_POLL_MS);
    } else if (isSettled(job) && entry.stop) {
      entry.stop();
      entry.stop = null;
    }
    if (wasReading && !isReadingText(job)) this.onTextRead(job);
  }

  follow(entry) {
    const id = entry.job.id;
    if (typeof EventSource !== "function") {
      this.poll(entry);
      return;
    }
    const source = new EventSource(apiUrl(`jobs/${encodeURIComponent(id)}/events`));
    entry.stop = () => source.close();
    source.addEventListener("message", (event) => {
      try {
        this.update(JSON.parse(event.data));
      } catch {
        // A malformed event is ignored; the next one carries the whole status again.
      }
    });
    source.addEventListener("error", () => {
      // The stream closed or never opened: keep the numbers moving by polling instead.
      source.close();
      if (!isFinished(this.jobs.get(id).job)) this.poll(entry);
    });
  }

  poll(entry, interval = POLL_MS) {
    const id = entry.job.id;
    let timer = null;
    let stopped = false;
    let delay = interval;
    entry.stop = () => {
      stopped = true;
      clearTimeout(timer);
    };
    const tick = async () => {
      try {
        this.update(await apiFetch(`jobs/${encodeURIComponent(id)}`));
        delay = interval;
        entry.view.setConnection("");
      } catch (error) {
        delay = Math.min(delay * 2, POLL_MAX_MS);
        entry.view.setConnection(`Progress unavailable (${error.message}); retrying…`);
      }
      if (!stopped && !isSettled(this.jobs.get(id).job)) timer = setTimeout(tick, delay);
    };
    tick();
  }

  async cancel(jobId) {
    try {
      this.update(await apiFetch(`jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST" }));
    } catch (error) {
      this.onError(`Could not cancel the job: ${error.message}`);
    }
  }

  createView(job) {
    const title = el("span", { class: "job-title" });
    const badge = el("span", { class: "status-badge" });
    const age = el("span", { class: "job-age" });
    const segments = {
      indexed: el("div", { class: "bar-fill indexed" }),
      duplicates: el("div", { class: "bar-fill duplicates" }),
      failed: el("div", { class: "bar-fill failed" }),
    };
    const bar = el("div", {
      class: "bar stacked", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
    }, segments.indexed, segments.duplicates, segments.failed);
    const progressText = el("span", { class: "job-progress-text" });
    const counts = {
      indexed: el("span", { class: "count indexed" }),
      duplicates: el("span", { class: "count duplicates" }),
      failed: el("span", { class: "count failed" }),
    };
    const textRead = el("span", { class: "text-read" });
    const textFailed = el("span", { class: "text-failed" });
    const text = el("p", { class: "job-text", hidden: true }, textRead, textFailed);
    const connection = el("p", { class: "job-connection", hidden: true });
    const jobError = el("p", { class: "job-error", role: "alert", hidden: true });
    const errorsSummary = el("summary");
    const errorsList = el("ul", { class: "job-errors-list" });
    const errors = el("details", { class: "job-errors", hidden: true }, errorsSummary, errorsList);
    const cancel = el("button", {
      type: "button", class: "button small subtle", onclick: () => this.cancel(job.id),
    }, "Cancel");
    const root = el("li", { class: "job", dataset: { jobId: job.id } },
      el("div", { class: "job-head" }, title, badge),
      el("div", { class: "job-sub" }, age, progressText),
      bar,
      el("div", { class: "job-counts" }, counts.indexed, counts.duplicates, counts.failed, cancel),
      text, connection, jobError, errors);
    let shownErrors = -1;

    return {
      root,
      setConnection(text) {
        connection.hidden = !text;
        connection.textContent = text;
      },
      render(current) {
        const name = current.folder || (current.source === "upload" ? "Upload" : current.source || "Job");
        title.textContent = name;
        title.title = name;
        badge.textContent = STATUS_LABELS[current.status] || current.status;
        badge.className = `status-badge ${current.status}`;
        age.textContent = formatAge(current.created_at);
        const total = current.total || 0;
        const percent = total ? Math.min(100, (current.processed / total) * 100) : isFinished(current) ? 100 : 0;
        for (const key of Object.keys(segments)) {
          segments[key].style.width = total ? `${(current[key] / total) * 100}%` : "0%";
        }
        bar.setAttribute("aria-valuenow", String(Math.round(percent)));
        bar.setAttribute("aria-label", `${name}: ${current.processed} of ${total} files processed`);
        bar.classList.toggle("active", !isFinished(current));
        progressText.textContent = `${current.processed} / ${plural(total, "file")}`;
        counts.indexed.textContent = `${current.indexed} indexed`;
        counts.duplicates.textContent = `${current.duplicates} ${current.duplicates === 1 ? "duplicate" : "duplicates"}`;
        counts.failed.textContent = `${current.failed} failed`;
        counts.failed.classList.toggle("nonzero", current.failed > 0);
        cancel.hidden = isFinished(current);
        jobError.hidden = !current.error;
        jobError.textContent = current.error || "";
        if (isFinished(current)) connection.hidden = true;

        // the text in its media, read after indexing (null: OCR is off)
        const progress = current.text;
        const toRead = progress ? progress.read + progress.waiting + progress.failed : 0;
        text.hidden = !toRead;
        if (toRead) {
          text.classList.toggle("active", progress.waiting > 0);
          textRead.textContent = `Text read ${progress.read} / ${toRead}`;
          textRead.title = progress.waiting > 0 ? "The words in the pictures are read after indexing; search works meanwhile" : "";
          textFailed.hidden = !progress.failed;
          textFailed.textContent = `${progress.failed} could not be read`;
        }

        const list = current.errors || []; // the first ones only; `failed` counts them all
        const failed = current.failed ?? list.length;
        errors.hidden = list.length === 0;
        if (failed !== shownErrors) {
          // Open a short list the first time errors appear; afterwards leave it as the person set it.
          if (shownErrors <= 0 && list.length) errors.open = list.length <= 5;
          shownErrors = failed;
          errorsSummary.textContent = `${plural(failed, "file")} could not be indexed`
            + (failed > list.length ? ` (the first ${list.length} are listed)` : "");
          errorsList.replaceChildren(...list.map((item) =>
            el("li", {}, el("code", { class: "error-file", title: item.file }, item.file),
              el("span", { class: "error-reason" }, item.reason))));
        }
      },
    };
  }
}
