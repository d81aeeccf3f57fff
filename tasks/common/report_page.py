"""The one look of loraflow's HTML reports (data and evaluation): a dark header, a sticky section nav, white cards.

Each report is one self-contained page (inline CSS, base64 plots); both build it with `report_page`.
"""
from html import escape

REPORT_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","WenQuanYi Zen Hei",sans-serif;margin:0;background:#f5f6f8;color:#1d2430}
header{background:#1d2430;color:#fff;padding:16px 28px}header h1{margin:0;font-size:21px}header p{margin:4px 0 0;color:#c9d1dc;font-size:13px}
nav{background:#fff;padding:8px 28px;border-bottom:1px solid #e3e6ea;position:sticky;top:0;z-index:2}nav a{margin-right:16px;color:#3867d6;text-decoration:none;font-size:14px}
main{max-width:1150px;margin:0 auto;padding:8px 20px 40px}section{background:#fff;border-radius:8px;padding:14px 20px;margin:16px 0;scroll-margin-top:48px}
h2{font-size:17px;margin:0 0 10px}h3{font-size:14px;margin:14px 0 6px;color:#444}
table{border-collapse:collapse;font-size:13px;margin:6px 0;width:100%}th,td{border-bottom:1px solid #eceef1;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f7f8fa;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.neg{color:#c0392b;font-weight:600}.pos{color:#1e8449}.muted{color:#777;font-size:13px}img{max-width:100%;height:auto}
.banner{padding:12px 16px;border-radius:6px;font-size:16px;font-weight:600}.promote{background:#e3f6ea;color:#1e8449}.reject{background:#fdecea;color:#c0392b}
ul.reasons{margin:8px 0 0;padding-left:20px;font-size:13px}li.fail{color:#c0392b}li.pass{color:#1e8449}li.skip{color:#777}
.tag{display:inline-block;border-radius:3px;padding:1px 6px;font-size:12px;background:#eef1f6}.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:12px;max-height:180px;overflow:auto;background:#f7f8fa;padding:4px 6px;border-radius:4px}
td.text{width:22%}td.text pre{min-width:120px}
details{margin:6px 0}details>summary{cursor:pointer;font-size:13px}details.records{padding:4px 8px;border:1px solid #e3e6ea;border-radius:6px}
details details{margin:2px 0 2px 14px}table.header th{width:16%}
del{background:#fdecea;color:#c0392b;text-decoration:line-through}ins{background:#e3f6ea;color:#1e8449;text-decoration:none}
"""


def report_page(title: str, meta: list[str], sections: list[tuple[str, str, str]], extra_css: str = "") -> str:
    """The whole page: header (title, meta line), a nav with one link per section, then each (id, heading, HTML) section."""
    nav = "".join(f"<a href='#{key}'>{escape(heading.split(':')[0])}</a>" for key, heading, _ in sections)
    body = "".join(f"<section id='{key}'><h2>{escape(heading)}</h2>{content}</section>" for key, heading, content in sections)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{REPORT_CSS}{extra_css}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>{escape(' · '.join(meta))}</p></header>"
            f"<nav>{nav}</nav><main>{body}</main></body></html>")
