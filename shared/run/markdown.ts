import MarkdownIt from "markdown-it";

/** Text made safe inside HTML elements and quoted attributes. */
export const escapeHtml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");

/**
 * Model answers rendered for report.html with markdown-it: raw HTML in an answer is shown as
 * text (`html: false`), and links keep markdown-it's own check (no javascript:, vbscript:,
 * file: or data: URLs) narrowed here to http, https and mailto. GitHub tables are on.
 */
const md = new MarkdownIt({ html: false, linkify: false, typographer: false });
const defaultValidate = md.validateLink.bind(md);
md.validateLink = (url: string) => /^(https?:\/\/|mailto:)/i.test(url.trim()) && defaultValidate(url);
md.renderer.rules.link_open = (tokens, i, options, _env, self) => {
  tokens[i]!.attrSet("rel", "noopener noreferrer nofollow");
  return self.renderToken(tokens, i, options);
};
// Answer headings sit under the report's own h1-h3: # becomes h3, ## h4, and so on (h6 at most).
md.renderer.rules.heading_open = (tokens, i, options, _env, self) => {
  tokens[i]!.tag = `h${Math.min(6, Number(tokens[i]!.tag.slice(1)) + 2)}`;
  return self.renderToken(tokens, i, options);
};
md.renderer.rules.heading_close = md.renderer.rules.heading_open;
// Images would load from anywhere the answer names: shown as their alt text instead.
md.disable("image");

/** Renders Markdown to HTML; the result contains no tag or attribute the source wrote. */
export const renderMarkdown = (source: string): string => md.render(source);
