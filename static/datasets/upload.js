// Drag-and-drop upload to the datasets API with a progress bar and the API's report on failure.
// Plain JavaScript, no dependencies (the platform runs without internet access).
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) return;
  var zone = document.getElementById("dropzone");
  var input = document.getElementById("file-input");
  var nameLabel = document.getElementById("file-name");
  var result = document.getElementById("upload-result");
  var progress = form.querySelector(".progress");
  var bar = document.getElementById("progress-bar");
  var barText = document.getElementById("progress-text");
  var button = document.getElementById("upload-button");
  var msg = form.dataset;
  // The djangojs catalog (/jsi18n/, loaded by base.html); plain English if it failed to load.
  var gettext = window.gettext || function (text) { return text; };
  var interpolate = window.interpolate || function (fmt, obj) {
    return fmt.replace(/%\(\w+\)s/g, function (m) { return String(obj[m.slice(2, -2)]); });
  };
  var chosen = null;

  function choose(file) {
    chosen = file || null;
    nameLabel.textContent = chosen ? chosen.name + " (" + formatBytes(chosen.size) + ")" : "";
    zone.classList.toggle("has-file", !!chosen);
    result.innerHTML = "";
  }

  function formatBytes(n) {
    var units = [gettext("bytes"), "KB", "MB", "GB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setProgress(fraction, text) {
    progress.hidden = false;
    var pct = Math.round(fraction * 100);
    bar.style.width = pct + "%";
    bar.setAttribute("aria-valuenow", String(pct));
    barText.textContent = text;
  }

  function showError(body, status) {
    var err = (body && body.error) || {message: "HTTP " + status};
    result.innerHTML = "";
    result.appendChild(el("p", "msg msg-error", err.message));
    var report = err.details && err.details.report;
    if (report && report.errors && report.errors.length) {
      var table = el("table", "table compact report-errors");
      var head = table.createTHead().insertRow();
      [gettext("File"), gettext("Line"), gettext("Field"), gettext("Problem")].forEach(function (h) {
        head.appendChild(el("th", "", h));
      });
      var tbody = table.createTBody();
      report.errors.forEach(function (e) {
        var row = tbody.insertRow();
        [e.file, e.line == null ? "" : e.line, e.field || "", e.message].forEach(function (v) {
          row.appendChild(el("td", "", String(v)));
        });
      });
      result.appendChild(table);
      if (report.error_count > report.errors.length) {
        var more = report.error_count - report.errors.length;
        result.appendChild(el("p", "muted", "… " + interpolate(gettext("%(n)s more"), {n: more}, true)));
      }
    }
    if (report && report.warnings && report.warnings.length) {
      var list = el("ul", "warnings");
      report.warnings.forEach(function (w) { list.appendChild(el("li", "", w.message)); });
      result.appendChild(list);
    }
  }

  zone.addEventListener("click", function (event) {
    if (event.target.tagName !== "LABEL" && event.target !== input) input.click();
  });
  zone.addEventListener("keydown", function (event) {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
  });
  input.addEventListener("change", function () { choose(input.files[0]); });
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.remove("dragging"); });
  });
  zone.addEventListener("drop", function (event) {
    var files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length) choose(files[0]);
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!chosen) { result.innerHTML = ""; result.appendChild(el("p", "msg msg-error", msg.msgNoFile)); return; }
    if (chosen.size > Number(msg.maxBytes)) {
      result.innerHTML = ""; result.appendChild(el("p", "msg msg-error", msg.msgTooLarge)); return;
    }
    var data = new FormData();
    data.append("file", chosen, chosen.name);
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name || field.name === "file" || field.name === "csrfmiddlewaretoken" || field.disabled) return;
      if (field.type === "checkbox") { if (field.checked) data.append(field.name, "true"); return; }
      if (field.type === "file") { if (field.files.length) data.append(field.name, field.files[0], field.files[0].name); return; }
      if (field.value !== "") data.append(field.name, field.value);
    });
    var xhr = new XMLHttpRequest();
    xhr.open("POST", msg.uploadUrl);
    xhr.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    xhr.setRequestHeader("Accept", "application/json");
    // Our own page calling the API: answer in the page's language (the API otherwise speaks English).
    xhr.setRequestHeader("X-Tuneforge-UI", "1");
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) setProgress(e.loaded / e.total, msg.msgUploading + " " + Math.round(100 * e.loaded / e.total) + "%");
    });
    xhr.upload.addEventListener("load", function () { setProgress(1, msg.msgProcessing); });
    xhr.addEventListener("load", function () {
      button.disabled = false;
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      if ((xhr.status === 201 || xhr.status === 200) && body && body.version) {
        setProgress(1, xhr.status === 201 ? msg.msgCreated : msg.msgExisting);
        window.location.href = msg.versionUrl.replace("VERSION_ID", body.version.id) + (xhr.status === 200 ? "?existing=1" : "");
        return;
      }
      progress.hidden = true;
      showError(body, xhr.status);
    });
    xhr.addEventListener("error", function () {
      button.disabled = false; progress.hidden = true;
      result.innerHTML = ""; result.appendChild(el("p", "msg msg-error", msg.msgNetwork));
    });
    button.disabled = true;
    setProgress(0, msg.msgUploading);
    xhr.send(data);
  });
})();
