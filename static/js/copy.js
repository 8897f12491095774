// Copy buttons: <button data-copy="#element-id">. Falls back to selecting the text where the
// clipboard API is unavailable (plain http on a non-local host). The "Copied" label comes
// translated from the including <script data-copied="...">.
(function () {
  "use strict";
  var copied = (document.currentScript && document.currentScript.dataset.copied) || "Copied";
  function select(node) {
    var range = document.createRange(); range.selectNodeContents(node);
    var selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range);
  }
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.querySelector(button.dataset.copy);
      var text = source.value !== undefined ? source.value : source.textContent.trim();
      var done = function () {
        var old = button.textContent;
        button.textContent = button.dataset.copied || copied;
        setTimeout(function () { button.textContent = old; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { select(source); });
      } else { select(source); }
    });
  });
})();
