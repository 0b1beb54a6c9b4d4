// How capture details read on screen: when a photo or video was taken (as the wall clock where it was
// taken, the way the API gives it), the month it belongs to, where and with what.

// "2024-03-10T15:22:05+01:00", or without an offset when the file did not say one.
const TAKEN_AT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?$/;

export const TAKEN_SOURCES = {
  exif: "from the photo's EXIF",
  video: "from the video's metadata",
  file: "the file's date: it says nothing about when it was taken",
};

function parts(text) {
  const found = TAKEN_AT.exec(text || "");
  if (!found) return null;
  const [, year, month, day, hour, minute, second, offset] = found;
  return { wallClock: Date.UTC(+year, +month - 1, +day, +hour, +minute, +(second || 0)), offset };
}

/** "10 Mar 2024, 15:22 (UTC+01:00)": the time as the camera's clock read, with its offset when known. */
export function formatTakenAt(text) {
  const taken = parts(text);
  if (!taken) return text || "";
  const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" })
    .format(taken.wallClock);
  if (!taken.offset) return when;
  return `${when} (${taken.offset === "Z" || taken.offset === "+00:00" ? "UTC" : `UTC${taken.offset}`})`;
}

/** "2024-03": the month an item was taken in (where it was taken), else the UTC month it was added. */
export function monthKey(item) {
  if (item.taken_at) return item.taken_at.slice(0, 7);
  return new Date(item.created_at * 1000).toISOString().slice(0, 7);
}

/** "March 2024" for "2024-03". */
export function monthTitle(key) {
  const [year, number] = key.split("-").map(Number);
  return new Intl.DateTimeFormat(undefined, { month: "long", year: "numeric", timeZone: "UTC" })
    .format(Date.UTC(year, number - 1, 1));
}

/** "Mar" for "2024-03". */
export function monthShort(key) {
  const [year, number] = key.split("-").map(Number);
  return new Intl.DateTimeFormat(undefined, { month: "short", timeZone: "UTC" }).format(Date.UTC(year, number - 1, 1));
}

/** "2024-03-31" for "2024-03": as a date filter, it covers that last day whole. */
export function endOfMonth(key) {
  const [year, number] = key.split("-").map(Number);
  return new Date(Date.UTC(year, number, 0)).toISOString().slice(0, 10);
}

/** "48.85840, 2.29450": plain text, no map link (nothing leaves the server). */
export function formatPlace(gps) {
  return `${gps.lat.toFixed(5)}, ${gps.lon.toFixed(5)}`;
}
