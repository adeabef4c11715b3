// Chartroom: the Trusted Types `default` policy, the only one the CSP allows
// (`trusted-types default; require-trusted-types-for 'script'`). Loaded before htmx.
//
// htmx 2 parses server responses with DOMParser.parseFromString, a Trusted Types sink, and
// creates no policy of its own. This policy lets HTML through for that parser only: a
// parsed document is inert (it runs no script), and htmx runs with allowScriptTags:false and
// allowEval:false. Chromium names the sink "DOMParser parseFromString" or, since it routes
// that call through the same parser, "Document parseHTMLUnsafe". Every other HTML sink
// (innerHTML, insertAdjacentHTML, document.write, …) and every script or script-URL
// conversion is refused (returning nothing makes the browser block the assignment and
// report a violation).
'use strict';
if (window.trustedTypes && window.trustedTypes.createPolicy) {
  var inertParsers = ['DOMParser parseFromString', 'Document parseHTMLUnsafe'];
  window.trustedTypes.createPolicy('default', {
    createHTML: function (html, _type, sink) {
      return inertParsers.indexOf(sink) >= 0 ? html : null;
    },
    createScript: function () { return null; },
    createScriptURL: function () { return null; },
  });
}
