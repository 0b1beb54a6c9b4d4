// Banners at the top of the page, and the health check that feeds them: server unreachable,
// services down, and the loud warning when the model runs with random weights.

import { fetchHealth } from "./api.js";
import { el, formatCount, plural } from "./format.js";

const CHECK_EVERY_MS = 15000;
const CHECK_WHILE_LOADING_MS = 3000; // the model downloading or loading: its progress moves
// The embedder's state while its model is on the way (shared/schemas.py EMBEDDER_STARTING, download.py).
const MODEL_ON_THE_WAY = /^(downloading the model|starting: loading the model)/;

export class Banners {
  constructor(container) {
    this.container = container;
    this.items = new Map();
  }

  /** Show or replace the banner called `id`. tone: "danger" | "warning" | "info". */
  set(id, { tone, title, text, action }) {
    const existing = this.items.get(id);
    const body = el("div", { class: "banner-body" }, title ? el("strong", {}, title) : null, text ? el("span", {}, text) : null);
    const button = action ? el("button", { type: "button", class: "button small", onclick: action.run }, action.label) : null;
    const dismiss = tone === "danger" && id === "weights" ? null
      : el("button", { type: "button", class: "icon-button small", "aria-label": "Dismiss", onclick: () => this.clear(id) }, "×");
    const banner = el("div", {
      class: `banner ${tone}`, role: tone === "info" ? "status" : "alert", dataset: { banner: id },
    }, body, button, dismiss);
    if (existing) existing.replaceWith(banner);
    else this.container.append(banner);
    this.items.set(id, banner);
  }

  clear(id) {
    const banner = this.items.get(id);
    if (banner) banner.remove();
    this.items.delete(id);
  }
}

export class HealthMonitor {
  constructor({ banners, stats, onHealth }) {
    this.banners = banners;
    this.stats = stats;
    this.onHealth = onHealth;
    this.timer = null;
    this.last = null;
  }

  async check() {
    clearTimeout(this.timer);
    try {
      const health = await fetchHealth();
      this.last = health;
      this.banners.clear("unreachable");
      this.render(health);
      this.onHealth(health);
    } catch (error) {
      this.last = null;
      this.stats.textContent = "";
      // Signed out: the sign-in form is on screen now, and signing in starts the checks again.
      if (error.unauthorized) return;
      this.banners.clear("services"); // says nothing while the gateway itself is out of reach
      this.banners.set("unreachable", {
        tone: "danger", title: "Service unavailable.", text: `${error.message} Retrying every ${CHECK_EVERY_MS / 1000} s.`,
        action: { label: "Retry now", run: () => this.check() },
      });
    }
    this.timer = setTimeout(() => this.check(), this.modelOnTheWay ? CHECK_WHILE_LOADING_MS : CHECK_EVERY_MS);
  }

  stop() {
    clearTimeout(this.timer);
  }

  render(health) {
    this.stats.textContent = `${plural(health.media, "item")} · ${formatCount(health.frames)} frames indexed`;
    this.stats.title = health.model_id ? `Model: ${health.model_id}` : "";

    if (health.real_weights === false) {
      this.banners.set("weights", {
        tone: "danger",
        title: "Random model weights: search results are meaningless.",
        text: `The model (${health.model_id || "CLIP"}) has randomly initialised weights, so similarities say nothing about ` +
          "what is in your photos and videos. Point MEDIASEARCH_CLIP_MODEL at the real weights (or let the embedder " +
          "download them on a machine with internet), then index again.",
      });
    } else this.banners.clear("weights");

    const services = health.services || [];
    const loading = services.find((service) => service.name === "embedder" && !service.ok && MODEL_ON_THE_WAY.test(service.detail || ""));
    this.modelOnTheWay = Boolean(loading);
    if (loading) {
      const downloading = loading.detail.startsWith("downloading");
      this.banners.set("model", {
        tone: "info", title: downloading ? "Downloading the model (first start)." : "Loading the model.",
        text: `${loading.detail}. Search and indexing start once it is ready; uploads wait meanwhile.`,
      });
    } else this.banners.clear("model");

    const down = services.filter((service) => !service.ok && service !== loading);
    if (down.length) {
      const names = down.map((service) => (service.detail ? `${service.name} (${service.detail})` : service.name)).join("; ");
      this.banners.set("services", {
        tone: "warning", title: `${down.length === 1 ? "A service is" : "Some services are"} down:`,
        text: `${names}. Search or indexing may fail until it is back.`,
      });
    } else this.banners.clear("services");
  }
}
