// Form behaviours declared in the markup, so no page needs an inline script or handler (the
// Content-Security-Policy allows scripts from this server only):
//   <select data-autosubmit>   sends its form as soon as the choice changes;
//   <form data-confirm="...">  asks the question once more before the form is sent;
//   <input data-shown-by="id"> its field is shown only while the checkbox `id` is ticked.
(function () {
  "use strict";
  function syncShownBy() {
    document.querySelectorAll("[data-shown-by]").forEach(function (input) {
      var box = document.getElementById(input.dataset.shownBy);
      var wrapper = input.closest(".field") || input;
      if (box) wrapper.hidden = !box.checked;
    });
  }
  document.addEventListener("DOMContentLoaded", syncShownBy);
  document.addEventListener("change", function (event) {
    if (event.target && event.target.type === "checkbox") syncShownBy();
  });
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.matches && field.matches("[data-autosubmit]") && field.form) field.form.submit();
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
})();
