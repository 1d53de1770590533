// The demo page's one-tag embed, created here so that the key (when the server requires one) comes from
// this browser's local storage, never from the page address (which ends up in history and logs).
(function () {
  var STORE = "rag-demo-key";
  var key = localStorage.getItem(STORE) || "";
  var form = document.getElementById("demo-key");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    localStorage.setItem(STORE, document.getElementById("demo-key-value").value.trim());
    location.reload();
  });
  document.getElementById("demo-key-forget").addEventListener("click", function () {
    localStorage.removeItem(STORE);
    location.reload();
  });
  var tag = document.createElement("script");
  tag.src = "/widget.js";
  tag.setAttribute("data-title", "Ask the handbook");
  if (key) tag.setAttribute("data-key", key);
  document.body.appendChild(tag);
})();
