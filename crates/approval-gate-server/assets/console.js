// The console's script: live updates of the queue, the countdown of time left, and the
// JSON editor's checks. Every page works without it; it only adds to what the forms do.
(function () {
  "use strict";

  // The queue: refetch the page and swap its live part when the server says it changed.
  const live = document.querySelector("[data-live]");
  if (live && "EventSource" in window) {
    const events = new EventSource("/events");
    let busy = false;
    let again = false;
    const refresh = async function () {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        const answer = await fetch(window.location.href, { credentials: "same-origin" });
        if (answer.ok) {
          const page = new DOMParser().parseFromString(await answer.text(), "text/html");
          const fresh = page.querySelector("[data-live]");
          const current = document.querySelector("[data-live]");
          if (fresh && current) {
            current.replaceWith(document.importNode(fresh, true));
          }
        }
      } finally {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      }
    };
    events.addEventListener("queue", refresh);
  }

  // Time left counts down between refreshes.
  window.setInterval(function () {
    document.querySelectorAll("[data-remaining]").forEach(function (cell) {
      const left = Math.max(0, Number(cell.dataset.remaining) - 1);
      cell.dataset.remaining = String(left);
      cell.textContent = left > 0 ? left + " s" : "expired";
    });
  }, 1000);

  // The JSON editor: refuse invalid JSON before it is sent, and say what changed.
  const edit = document.querySelector("textarea[name=edit]");
  if (edit) {
    const status = document.getElementById("edit-status");
    const button = edit.form.querySelector("button[type=submit]");
    let shown = null;
    try {
      shown = JSON.parse(edit.defaultValue);
    } catch (e) {
      shown = null;
    }
    const changes = function (before, after, path, out) {
      const isObject = function (v) {
        return v !== null && typeof v === "object";
      };
      if (isObject(before) && isObject(after) && Array.isArray(before) === Array.isArray(after)) {
        const keys = new Set(Object.keys(before).concat(Object.keys(after)));
        keys.forEach(function (key) {
          const at = Array.isArray(after) ? path + "[" + key + "]" : (path ? path + "." : "") + key;
          if (!(key in before)) {
            out.push(at + " (added)");
          } else if (!(key in after)) {
            out.push(at + " (removed)");
          } else {
            changes(before[key], after[key], at, out);
          }
        });
      } else if (JSON.stringify(before) !== JSON.stringify(after)) {
        out.push(path || "the arguments");
      }
      return out;
    };
    const check = function () {
      let value;
      try {
        value = JSON.parse(edit.value);
      } catch (e) {
        status.textContent = "Not valid JSON: " + e.message;
        status.className = "invalid";
        button.disabled = true;
        return;
      }
      button.disabled = false;
      status.className = "";
      const changed = changes(shown, value, "", []);
      status.textContent = changed.length ? "Changes: " + changed.join(", ") : "No changes yet.";
    };
    edit.addEventListener("input", check);
    check();
  }
})();
