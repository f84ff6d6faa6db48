// Dashboard actions (roll back, unpin, promote): confirm, POST with the bearer token, then reload.
"use strict";

function requestBody(form) {
  const body = { collection: form.dataset.collection };
  const fields = form.elements;
  if (fields.reason && fields.reason.value) body.reason = fields.reason.value;
  if (fields.actor && fields.actor.value) body.actor = fields.actor.value;
  if (fields.to_version && fields.to_version.value) body.to_version = Number(fields.to_version.value);
  if (form.dataset.modelVersion) body.model_version = Number(form.dataset.modelVersion);
  return body;
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form.action-form")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
      const message = form.querySelector(".message");
      const button = form.querySelector("button");
      button.disabled = true;
      message.textContent = "working…";
      try {
        const response = await fetch(form.dataset.endpoint, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: "Bearer " + form.elements.token.value },
          body: JSON.stringify(requestBody(form)),
        });
        const payload = await response.json().catch(() => ({}));
        if (!response.ok) {
          message.textContent = "refused (" + response.status + "): " + (payload.detail || response.statusText);
          return;
        }
        message.textContent = (payload.to_model ? "now serving model v" + payload.to_model : "done") + "; reloading…";
        window.location.reload();
      } catch (err) {
        message.textContent = "failed: " + err;
      } finally {
        button.disabled = false;
      }
    });
  }
});
