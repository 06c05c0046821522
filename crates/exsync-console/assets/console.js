// Everything the console's pages do in the browser. The content security policy admits
// scripts from this file only, so pages carry no inline script or event handler; values
// reach this code through data- attributes and are only ever used as text.
'use strict';

(function () {
  function each(selector, action) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), action);
  }

  function start() {
    // Forms whose action cannot be undone ask first; the question is the attribute's text.
    each('form[data-confirm]', function (form) {
      form.addEventListener('submit', function (event) {
        if (!window.confirm(form.getAttribute('data-confirm') || '')) {
          event.preventDefault();
        }
      });
    });

    // What is typed into a secret field does not leave it by the clipboard or by dragging.
    each('[data-no-copy]', function (input) {
      ['copy', 'cut', 'dragstart'].forEach(function (type) {
        input.addEventListener(type, function (event) {
          event.preventDefault();
        });
      });
    });

    // Times come as UTC; the reader sees them in their own zone, with how long ago. The UTC
    // text stays as the element's title.
    each('time[datetime]', function (time) {
      var at = new Date(time.getAttribute('datetime') || '');
      if (isNaN(at.getTime())) {
        return;
      }
      var secs = Math.round((Date.now() - at.getTime()) / 1000);
      var ago = secs < 0 ? 'in the future'
        : secs < 60 ? secs + ' s ago'
        : secs < 3600 ? Math.floor(secs / 60) + ' min ago'
        : secs < 172800 ? Math.floor(secs / 3600) + ' h ago'
        : Math.floor(secs / 86400) + ' days ago';
      var local = at.toLocaleString(undefined, {
        year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', timeZoneName: 'short'
      });
      time.title = time.getAttribute('datetime') || '';
      time.textContent = local + ' (' + ago + ')';
    });

    // Parts of a form that only some choices of a select read (the Kerberos realm, the
    // password, an app's certificate or secret) follow the select named by data-shown-by:
    // shown while it holds one of data-shown-for. The server renders them for the stored
    // choice, which is what a browser without this script keeps.
    each('[data-shown-by]', function (part) {
      var select = document.getElementById(part.getAttribute('data-shown-by') || '');
      if (!select) {
        return;
      }
      function show() {
        var choices = (part.getAttribute('data-shown-for') || '').split(' ');
        part.hidden = choices.indexOf(select.value) < 0;
      }
      select.addEventListener('change', show);
      show();
    });

    // A file picker that puts the chosen file's text into the field it names, so a PEM
    // key can be picked instead of pasted; the field is what the form sends. A binary file
    // (a keytab, data-encoding="base64") goes in as base64, as the server takes it.
    each('input[type=file][data-fills]', function (picker) {
      picker.addEventListener('change', function () {
        var field = document.getElementById(picker.getAttribute('data-fills') || '');
        var file = picker.files && picker.files[0];
        if (!field || !file) {
          return;
        }
        if (picker.getAttribute('data-encoding') === 'base64') {
          file.arrayBuffer().then(function (buffer) {
            var bytes = new Uint8Array(buffer);
            var binary = '';
            for (var i = 0; i < bytes.length; i++) {
              binary += String.fromCharCode(bytes[i]);
            }
            field.value = window.btoa(binary);
          });
          return;
        }
        file.text().then(function (text) {
          field.value = text;
        });
      });
    });

    // Each command in a fix gets a button that copies it, so it reaches the shell as the
    // page shows it. Browsers offer the clipboard to secure pages only (HTTPS, or this host).
    each('code.command', function (code) {
      if (!navigator.clipboard) {
        return;
      }
      var button = document.createElement('button');
      button.type = 'button';
      button.className = 'copy';
      button.textContent = 'Copy';
      button.addEventListener('click', function () {
        navigator.clipboard.writeText(code.textContent || '').then(function () {
          button.textContent = 'Copied';
        });
      });
      code.parentNode.insertBefore(button, code.nextSibling);
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
