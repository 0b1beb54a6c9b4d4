// The preview modal: a larger frame, or the video playing from the matched moment with a timeline
// of every moment that matches the query, and the text read in the frame with the matched lines boxed
// over the picture (frametext.js). Keyboard: Escape closes, arrows step through results,
// Tab stays inside the dialog.

import { apiFetch } from "./api.js";
import { TAKEN_SOURCES, formatPlace, formatTakenAt } from "./capture.js";
import { el, formatBytes, formatSimilarity, formatTimestamp } from "./format.js";
import { FrameTextView, matchedWords } from "./frametext.js";

const $ = (id) => document.getElementById(id);
const TIMELINE_INSET_PX = 8; // keeps the markers at 0 s and at the very end inside the track (styles.css)
const FOCUSABLE = 'button:not([disabled]):not([hidden]), a[href]:not([hidden]), video[controls], input:not([disabled]), [tabindex]:not([tabindex="-1"])';

export class Preview {
  constructor({ onSimilar }) {
    this.onSimilar = onSimilar;
    this.dialog = $("preview");
    this.title = $("preview-title");
    this.media = $("preview-media");
    this.meta = $("preview-meta");
    this.timeline = $("preview-timeline");
    this.track = $("timeline-track");
    this.playhead = $("timeline-playhead");
    this.clock = $("timeline-clock");
    this.text = new FrameTextView({
      section: $("preview-text"), title: $("preview-text-title"),
      status: $("preview-text-status"), list: $("preview-text-lines"),
    });
    this.results = [];
    this.index = 0;
    this.opener = null;
    this.video = null;
    this.token = 0;
    this.bind();
  }

  bind() {
    const action = (name) => this.dialog.querySelector(`[data-action="${name}"]`);
    action("close").addEventListener("click", () => this.dialog.close());
    action("prev").addEventListener("click", () => this.step(-1));
    action("next").addEventListener("click", () => this.step(1));
    action("similar").addEventListener("click", () => {
      const result = this.results[this.index];
      this.dialog.close();
      this.onSimilar(result);
    });
    // A click on the backdrop lands on the <dialog> itself.
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog) this.dialog.close();
    });
    this.dialog.addEventListener("close", () => this.cleanUp());
    this.dialog.addEventListener("keydown", (event) => this.onKey(event));
    this.track.addEventListener("click", (event) => {
      if (event.target !== this.track || !this.video || !this.duration) return;
      const box = this.track.getBoundingClientRect();
      const inset = TIMELINE_INSET_PX;
      this.seek(Math.min(1, Math.max(0, (event.clientX - box.left - inset) / (box.width - 2 * inset))) * this.duration);
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  open(results, index, opener) {
    this.results = results;
    this.opener = opener || document.activeElement;
    if (!this.dialog.open) this.dialog.showModal();
    this.show(index);
    this.dialog.querySelector('[data-action="close"]').focus();
  }

  step(delta) {
    const next = this.index + delta;
    if (next >= 0 && next < this.results.length) this.show(next);
  }

  onKey(event) {
    if (event.key === "Tab") {
      this.trapFocus(event);
      return;
    }
    const inPlayer = event.target instanceof HTMLMediaElement || event.target.tagName === "INPUT";
    if (inPlayer) return;
    if (event.key === "ArrowLeft") {
      event.preventDefault();
      this.step(-1);
    } else if (event.key === "ArrowRight") {
      event.preventDefault();
      this.step(1);
    }
  }

  trapFocus(event) {
    const items = [...this.dialog.querySelectorAll(FOCUSABLE)].filter((node) => node.offsetParent !== null);
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    if (event.shiftKey && (document.activeElement === first || !this.dialog.contains(document.activeElement))) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }

  cleanUp() {
    this.token += 1;
    this.stopVideo();
    this.text.clear();
    this.media.replaceChildren();
    if (this.opener && this.opener.isConnected) this.opener.focus();
    this.opener = null;
  }

  stopVideo() {
    if (!this.video) return;
    this.video.pause();
    this.video.removeAttribute("src");
    this.video.load(); // releases the connection and the decoder
    this.video = null;
  }

  show(index) {
    this.token += 1;
    const token = this.token;
    this.index = index;
    const result = this.results[index];
    this.stopVideo();
    this.duration = 0;
    this.title.textContent = result.name;
    this.dialog.querySelector('[data-action="prev"]').disabled = index === 0;
    this.dialog.querySelector('[data-action="next"]').disabled = index === this.results.length - 1;
    const original = this.dialog.querySelector('[data-action="original"]');
    original.href = result.media_url;
    this.renderMeta(result, null);

    let frame = null; // the picture the matched text is boxed on (a video plays on: no boxes)
    if (result.kind === "video") this.showVideo(result, token);
    else {
      this.timeline.hidden = true;
      const image = el("img", { src: result.frame_url, alt: result.name, class: "preview-image" });
      image.addEventListener("error", () => this.showMediaError("The image could not be loaded."), { once: true });
      frame = el("div", { class: "preview-frame" }, image);
      this.media.replaceChildren(frame);
    }
    this.text.show(result, frame, () => token === this.token && this.dialog.open);
    apiFetch(`media/${result.media_id}`)
      .then((media) => {
        if (token !== this.token) return;
        this.renderMeta(result, media);
        if (result.kind === "video" && media && media.duration) this.setDuration(media.duration, result);
      })
      .catch(() => {}); // details are optional; the preview works without them
  }

  showVideo(result, token) {
    const start = Number(result.timestamp) || 0;
    const video = el("video", {
      controls: true, preload: "auto", playsInline: true,
      poster: result.frame_url, src: result.media_url,
      "aria-label": `${result.name}, playing from ${formatTimestamp(start)}`,
    });
    this.video = video;
    const play = () => video.play().catch(() => {}); // autoplay may be refused; the controls remain
    video.addEventListener("loadedmetadata", () => {
      if (token !== this.token) return;
      if (!this.duration && Number.isFinite(video.duration)) this.setDuration(video.duration, result);
      if (start > 0) {
        video.addEventListener("seeked", play, { once: true });
        video.currentTime = start;
      } else play();
    }, { once: true });
    video.addEventListener("timeupdate", () => this.updatePlayhead());
    video.addEventListener("error", () => {
      if (token === this.token) {
        this.showMediaError("This video cannot be played in the browser. “Open original” downloads it.", result);
      }
    }, { once: true });
    this.media.replaceChildren(video);
    this.timeline.hidden = result.similarity == null; // where the query matches: nothing to show without one
    this.track.querySelectorAll(".timeline-marker").forEach((marker) => marker.remove());
    this.clock.textContent = formatTimestamp(start);
  }

  showMediaError(message, result) {
    const poster = result ? el("img", { src: result.frame_url, alt: result.name, class: "preview-image" }) : null;
    this.media.replaceChildren(...[poster, el("p", { class: "media-error", role: "alert" }, message)].filter(Boolean));
    this.video = null;
  }

  setDuration(duration, result) {
    if (this.duration) return;
    this.duration = duration;
    if (result.similarity == null) return; // opened from the library, not from a search: no matches to mark
    const moments = result.moments && result.moments.length
      ? result.moments
      : [{ frame_id: result.frame_id, timestamp: result.timestamp, similarity: result.similarity }];
    const sims = moments.map((m) => m.similarity);
    const low = Math.min(...sims);
    const span = Math.max(...sims) - low || 1;
    const markers = moments.map((moment) => {
      const time = Number(moment.timestamp) || 0;
      const strength = (moment.similarity - low) / span; // 0 weakest .. 1 strongest of this video
      const marker = el("button", {
        type: "button", class: "timeline-marker",
        "aria-label": `Jump to ${formatTimestamp(time)} (similarity ${formatSimilarity(moment.similarity)})`,
        title: `${formatTimestamp(time)} · ${formatSimilarity(moment.similarity)}`,
        dataset: { timestamp: String(time) },
        onclick: () => {
          this.track.querySelectorAll(".timeline-marker.current").forEach((node) => node.classList.remove("current"));
          marker.classList.add("current");
          this.seek(time);
        },
      });
      marker.style.setProperty("--position", String(Math.min(1, time / duration)));
      marker.style.setProperty("--strength", String(0.35 + 0.65 * strength));
      if (moment.frame_id === result.frame_id) marker.classList.add("current");
      return marker;
    });
    this.track.append(...markers);
    this.updatePlayhead();
  }

  seek(time) {
    if (!this.video) return;
    this.video.currentTime = Math.max(0, time);
    this.video.play().catch(() => {});
  }

  updatePlayhead() {
    if (!this.video || !this.duration) return;
    const time = this.video.currentTime;
    this.playhead.style.setProperty("--position", String(Math.min(1, time / this.duration)));
    this.clock.textContent = `${formatTimestamp(time)} / ${formatTimestamp(this.duration)}`;
  }

  renderMeta(result, media) {
    const searched = result.similarity != null; // else opened from the library timeline
    const rows = searched ? [["Similarity", formatSimilarity(result.similarity)]] : [];
    if (searched && result.kind === "video") {
      rows.push(["Matched at", formatTimestamp(result.timestamp)]);
      if (result.moments && result.moments.length > 1) rows.push(["Moments", String(result.moments.length)]);
    }
    const words = matchedWords(result);
    if (searched && words.length) rows.push(["Matched text", words.map((word) => `“${word}”`).join(", ")]);
    rows.push(["Type", result.kind === "video" ? "Video" : "Photo"]);
    if (media) {
      // when, where and with what it was taken
      if (media.taken_at) rows.push(["Taken", `${formatTakenAt(media.taken_at)} (${TAKEN_SOURCES[media.taken_at_source] || "source unknown"})`]);
      if (media.camera) rows.push(["Camera", media.camera]);
      if (media.lens) rows.push(["Lens", media.lens]);
      if (media.gps) rows.push(["Location", formatPlace(media.gps)]);
      if (media.folder) rows.push(["Folder", media.folder]);
      if (media.width && media.height) rows.push(["Dimensions", `${media.width} × ${media.height}`]);
      if (media.duration) rows.push(["Duration", formatTimestamp(media.duration)]);
      if (media.size) rows.push(["File size", formatBytes(media.size)]);
    }
    this.meta.replaceChildren(...rows.map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value))));
  }
}
