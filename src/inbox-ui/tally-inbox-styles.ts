// The <tally-inbox> component's style sheet (inside its shadow root). Every colour and size comes
// from a custom property with a default, so a page themes the bell by setting them on the element
// (docs/inbox-ui.md lists them). The defaults meet WCAG AA contrast.

export const STYLES = `
:host{--a:var(--tally-inbox-accent,#0969da);--fg:var(--tally-inbox-fg,#1f2328);--bg:var(--tally-inbox-bg,#fff);--mu:var(--tally-inbox-muted,#59636e);--bd:var(--tally-inbox-border,#d1d9e0);--hv:var(--tally-inbox-hover-bg,#f6f8fa);--un:var(--tally-inbox-unread-bg,#eef6ff);--r:var(--tally-inbox-radius,8px);position:relative;display:inline-block;font:var(--tally-inbox-font,14px/1.4 system-ui,sans-serif);color:var(--fg)}
[hidden]{display:none!important}
button{font:inherit;color:inherit;background:none;border:0;cursor:pointer;border-radius:calc(var(--r)/2);padding:4px 6px}
button:hover{background:var(--hv)}
:focus-visible{outline:2px solid var(--a);outline-offset:1px}
svg{width:1.15em;height:1.15em;vertical-align:middle;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}
.bell{position:relative;color:var(--tally-inbox-bell-color,var(--fg));font-size:var(--tally-inbox-bell-size,20px);padding:6px;line-height:1}
.badge{position:absolute;top:0;right:0;min-width:1.5em;box-sizing:border-box;padding:0 .35em;border-radius:1em;font-size:11px;line-height:1.5em;font-weight:600;background:var(--tally-inbox-badge-bg,#cf222e);color:var(--tally-inbox-badge-fg,#fff)}
.panel{position:absolute;right:0;top:calc(100% + 6px);z-index:var(--tally-inbox-z-index,1000);width:var(--tally-inbox-width,min(380px,calc(100vw - 16px)));max-height:var(--tally-inbox-max-height,480px);display:flex;flex-direction:column;background:var(--bg);color:var(--fg);border:1px solid var(--bd);border-radius:var(--r);box-shadow:var(--tally-inbox-shadow,0 8px 24px rgba(0,0,0,.16));overflow:hidden;text-align:left}
.panel.l{right:auto;left:0}
.head{display:flex;align-items:center;gap:4px;padding:8px 8px 8px 14px;border-bottom:1px solid var(--bd)}
h2,h3{font-size:1em;margin:0;flex:1}
.link{color:var(--a)}
[role=tablist]{display:flex;gap:2px;padding:4px 8px;border-bottom:1px solid var(--bd)}
[role=tab][aria-selected=true]{color:var(--a);box-shadow:inset 0 -2px var(--a);border-radius:0}
.feed{display:flex;flex-direction:column;flex:1;min-height:0}
.scroll{overflow-y:auto;flex:1;min-height:0}
ul{list-style:none;margin:0;padding:0}
.item{display:flex;gap:8px;padding:10px 8px 10px 14px;border-bottom:1px solid var(--bd)}
.item.unread{background:var(--un)}
.dot{flex:none;width:8px;height:8px;margin-top:6px;border-radius:50%}
.unread .dot{background:var(--a)}
.c{flex:1;min-width:0}
.t{font-weight:600;margin:0;overflow-wrap:anywhere}
.t a{color:inherit}
.b{margin:2px 0 0;overflow-wrap:anywhere}
time,.empty,.err,.note{color:var(--mu);font-size:.9em}
.acts{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}
.acts button{border:1px solid var(--bd);padding:2px 10px}
.acts button:first-child{background:var(--a);border-color:var(--a);color:var(--tally-inbox-accent-fg,#fff)}
.tools{display:flex;flex-direction:column;flex:none}
.tools button{color:var(--mu)}
.empty,.err,.note{margin:0;padding:16px 14px}
.err{color:var(--tally-inbox-error,#b42318)}
.more{height:1px}
label{display:flex;align-items:center;gap:8px;padding:8px 14px;cursor:pointer}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
`;
