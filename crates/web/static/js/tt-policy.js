// Chartroom: the Trusted Types `default` policy, the only one the CSP allows
// (`trusted-types default; require-trusted-types-for 'script'`). Loaded before htmx.
//
// htmx 2 parses server responses with DOMParser.parseFromString, a Trusted Types sink, and
// creates no policy of its own. This policy lets HTML through for that one sink only: a
// parsed document runs no script, and htmx runs with allowScriptTags:false and
// allowEval:false. Every other HTML sink (innerHTML, insertAdjacentHTML, …) and every
// script or script-URL conversion is refused (returning nothing makes the browser block the
// assignment and report a violation).
'use strict';
if (window.trustedTypes && window.trustedTypes.createPolicy) {
  window.trustedTypes.createPolicy('default', {
    createHTML: function (html, _type, sink) {
      return sink === 'DOMParser parseFromString' ? html : null;
    },
    createScript: function () { return null; },
    createScriptURL: function () { return null; },
  });
}
