// Rollback from the dashboard: POST /rollback with the bearer token, then reload the page.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form.rollback-form")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const message = form.querySelector(".message");
      const button = form.querySelector("button");
      const body = { collection: form.dataset.collection, reason: form.elements.reason.value || "rolled back from the dashboard" };
      if (form.elements.to_version.value) body.to_version = Number(form.elements.to_version.value);
      button.disabled = true;
      message.textContent = "rolling back…";
      try {
        const response = await fetch("/rollback", {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: "Bearer " + form.elements.token.value },
          body: JSON.stringify(body),
        });
        const payload = await response.json().catch(() => ({}));
        if (!response.ok) {
          message.textContent = "rollback refused (" + response.status + "): " + (payload.detail || response.statusText);
          return;
        }
        message.textContent = "now serving model v" + payload.to_model + "; reloading…";
        window.location.reload();
      } catch (err) {
        message.textContent = "rollback failed: " + err;
      } finally {
        button.disabled = false;
      }
    });
  }
});
