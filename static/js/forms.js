// Form behaviours declared in the markup, so no page needs an inline script or handler (the
// Content-Security-Policy allows scripts from this server only):
//   <select data-autosubmit>   sends its form as soon as the choice changes;
//   <form data-confirm="...">  asks the question once more before the form is sent.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.matches && field.matches("[data-autosubmit]") && field.form) field.form.submit();
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
})();
