"use strict";(self.rspackChunknbserve=self.rspackChunknbserve||[]).push([[232],{475(e,r,n){var o=n(601),t=n.n(o),a=n(314),s=(n.n(a))()(t());s.push([e.id,`.nbserve-EndpointsPanel {
  background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1);
  font-size: var(--jp-ui-font-size1);
  overflow-y: auto;
  padding: 0 8px;
}

.nbserve-EndpointsPanel-header {
  font-size: var(--jp-ui-font-size0);
  font-weight: 600;
  letter-spacing: 1px;
  margin: 12px 0 8px;
  text-transform: uppercase;
}

.nbserve-EndpointList {
  list-style: none;
  margin: 0;
  padding: 0;
}

.nbserve-Endpoint {
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
  padding: 8px 0;
}

.nbserve-Endpoint.nbserve-mod-stale {
  opacity: 0.6;
}

.nbserve-Endpoint-title {
  align-items: baseline;
  display: flex;
  gap: 6px;
}

.nbserve-Endpoint-name {
  font-weight: 600;
}

.nbserve-Endpoint-backend {
  color: var(--jp-ui-font-color2);
}

.nbserve-Endpoint-status {
  border-radius: 8px;
  margin-left: auto;
  padding: 0 6px;
  background: var(--jp-layout-color3);
}

.nbserve-Endpoint-public {
  border: 1px solid var(--jp-warn-color1);
  border-radius: 8px;
  color: var(--jp-warn-color1);
  padding: 0 6px;
}

.nbserve-status-running {
  background: var(--jp-success-color2);
}

.nbserve-status-gone,
.nbserve-status-failed,
.nbserve-status-unhealthy {
  background: var(--jp-error-color2);
}

.nbserve-Endpoint-figures {
  display: flex;
  flex-wrap: wrap;
  gap: 10px;
  margin: 4px 0;
}

.nbserve-figure-label {
  color: var(--jp-ui-font-color2);
  margin-right: 3px;
}

.nbserve-Endpoint-url {
  align-items: flex-start;
  display: flex;
  flex-wrap: wrap;
  gap: 4px;
}

.nbserve-Endpoint-url-other {
  color: var(--jp-ui-font-color2);
  flex-basis: 100%;
  font-size: var(--jp-ui-font-size0);
  overflow-wrap: break-word; /* inside a part only when the part alone is wider than the column */
}

.nbserve-Endpoint-trend {
  height: 22px;
  margin: 2px 0 4px;
}

.nbserve-sparkline {
  background: var(--jp-layout-color2);
  border-radius: 2px;
  display: block;
  height: 22px;
  width: 100%;
}

.nbserve-sparkline polyline {
  fill: none;
  stroke-width: 1.5;
}

.nbserve-spark-rate {
  stroke: var(--jp-success-color1);
}

.nbserve-spark-p50 {
  stroke: var(--jp-brand-color1);
}

.nbserve-url-other {
  font-family: var(--jp-code-font-family);
}

.nbserve-url {
  flex: 1 1 0;
  font-family: var(--jp-code-font-family);
  min-width: 0;
  overflow-wrap: break-word; /* URLs wrap at their <wbr>s, after each '/' */
}

.nbserve-Endpoint-owner {
  margin: 2px 0;
}

.nbserve-notebook {
  color: var(--jp-content-link-color);
}

.nbserve-Endpoint-actions {
  display: flex;
  flex-wrap: wrap;
  gap: 4px;
}

.nbserve-action {
  font-size: var(--jp-ui-font-size0);
}

.nbserve-error {
  color: var(--jp-error-color1);
}

.nbserve-problem {
  color: var(--jp-warn-color1);
}

.nbserve-example {
  background: var(--jp-layout-color2);
  font-family: var(--jp-code-font-family);
  padding: 6px;
}
`,""]),n.d(r,{},{A:s})},314(e){e.exports=function(e){var r=[];return r.toString=function(){return this.map(function(r){var n="",o=void 0!==r[5];return r[4]&&(n+="@supports (".concat(r[4],") {")),r[2]&&(n+="@media ".concat(r[2]," {")),o&&(n+="@layer".concat(r[5].length>0?" ".concat(r[5]):""," {")),n+=e(r),o&&(n+="}"),r[2]&&(n+="}"),r[4]&&(n+="}"),n}).join("")},r.i=function(e,n,o,t,a){"string"==typeof e&&(e=[[null,e,void 0]]);var s={};if(o)for(var i=0;i<this.length;i++){var p=this[i][0];null!=p&&(s[p]=!0)}for(var l=0;l<e.length;l++){var c=[].concat(e[l]);o&&s[c[0]]||(void 0!==a&&(void 0===c[5]||(c[1]="@layer".concat(c[5].length>0?" ".concat(c[5]):""," {").concat(c[1],"}")),c[5]=a),n&&(c[2]&&(c[1]="@media ".concat(c[2]," {").concat(c[1],"}")),c[2]=n),t&&(c[4]?(c[1]="@supports (".concat(c[4],") {").concat(c[1],"}"),c[4]=t):c[4]="".concat(t)),r.push(c))}},r}},601(e){e.exports=function(e){return e[1]}},72(e){var r=[];function n(e){for(var n=-1,o=0;o<r.length;o++)if(r[o].identifier===e){n=o;break}return n}function o(e,o){for(var t={},a=[],s=0;s<e.length;s++){var i=e[s],p=o.base?i[0]+o.base:i[0],l=t[p]||0,c="".concat(p," ").concat(l);t[p]=l+1;var d=n(c),u={css:i[1],media:i[2],sourceMap:i[3],supports:i[4],layer:i[5]};if(-1!==d)r[d].references++,r[d].updater(u);else{var v=function(e,r){var n=r.domAPI(r);return n.update(e),function(r){r?(r.css!==e.css||r.media!==e.media||r.sourceMap!==e.sourceMap||r.supports!==e.supports||r.layer!==e.layer)&&n.update(e=r):n.remove()}}(u,o);o.byIndex=s,r.splice(s,0,{identifier:c,updater:v,references:1})}a.push(c)}return a}e.exports=function(e,t){var a=o(e=e||[],t=t||{});return function(e){e=e||[];for(var s=0;s<a.length;s++){var i=n(a[s]);r[i].references--}for(var p=o(e,t),l=0;l<a.length;l++){var c=n(a[l]);0===r[c].references&&(r[c].updater(),r.splice(c,1))}a=p}}},659(e){var r={};e.exports=function(e,n){var o=function(e){if(void 0===r[e]){var n=document.querySelector(e);if(window.HTMLIFrameElement&&n instanceof window.HTMLIFrameElement)try{n=n.contentDocument.head}catch(e){n=null}r[e]=n}return r[e]}(e);if(!o)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");o.appendChild(n)}},540(e){e.exports=function(e){var r=document.createElement("style");return e.setAttributes(r,e.attributes),e.insert(r,e.options),r}},56(e,r,n){e.exports=function(e){var r=n.nc;r&&e.setAttribute("nonce",r)}},206(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var r=e.insertStyleElement(e);return{update:function(n){var o,t,a;o="",n.supports&&(o+="@supports (".concat(n.supports,") {")),n.media&&(o+="@media ".concat(n.media," {")),(t=void 0!==n.layer)&&(o+="@layer".concat(n.layer.length>0?" ".concat(n.layer):""," {")),o+=n.css,t&&(o+="}"),n.media&&(o+="}"),n.supports&&(o+="}"),(a=n.sourceMap)&&"u">typeof btoa&&(o+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),e.styleTagTransform(o,r,e.options)},remove:function(){var e;null===(e=r).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,r){if(r.styleSheet)r.styleSheet.cssText=e;else{for(;r.firstChild;)r.removeChild(r.firstChild);r.appendChild(document.createTextNode(e))}}},579(e,r,n){var o=n(72),t=n.n(o),a=n(206),s=n.n(a),i=n(659),p=n.n(i),l=n(56),c=n.n(l),d=n(540),u=n.n(d),v=n(113),f=n.n(v),b=n(475),m={};m.styleTagTransform=f(),m.setAttributes=c(),m.insert=p().bind(null,"head"),m.domAPI=s(),m.insertStyleElement=u(),t()(b.A,m),b.A&&b.A.locals&&b.A.locals}}]);