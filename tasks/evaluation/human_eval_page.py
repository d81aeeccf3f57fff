"""The self-contained HTML page in which a rater scores exported cases and saves a CSV/JSONL file (no external assets)."""
import html
import json

from loraflow.tasks.evaluation.human_eval_rubric import json_field_diff

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","PingFang SC",sans-serif;margin:0;background:#f5f6f8;color:#1d2430}
header{position:sticky;top:0;background:#1d2430;color:#fff;padding:10px 20px;display:flex;gap:14px;align-items:center;flex-wrap:nowrap;z-index:2;white-space:nowrap}
header>*{flex-shrink:0}header h1,#keys{flex-shrink:1;min-width:0;overflow:hidden;text-overflow:ellipsis}
header h1{font-size:17px;margin:0 12px 0 0}header input{padding:5px 8px;border-radius:4px;border:0;width:9em}
button{padding:6px 12px;border:0;border-radius:4px;background:#3867d6;color:#fff;cursor:pointer;font-size:14px}
button.secondary{background:#6b7280}#progress{font-variant-numeric:tabular-nums}
main{max-width:1100px;margin:0 auto;padding:16px}
details.rubric{background:#fff;border-radius:6px;padding:10px 16px;margin-bottom:14px}
.case{background:#fff;border-radius:6px;padding:14px 18px;margin-bottom:16px;border-left:5px solid #d0d5dd;scroll-margin-top:72px}
.case.done{border-left-color:#20bf6b}.case h2{font-size:14px;margin:0 0 8px;color:#555}
.texts{display:grid;grid-template-columns:1fr 1fr 1fr;gap:10px}
.texts div{min-width:0}.texts h3{font-size:12px;text-transform:uppercase;color:#777;margin:0 0 4px}
pre{white-space:pre-wrap;word-break:break-word;background:#f0f2f5;padding:8px;border-radius:4px;margin:0;font-size:13px;max-height:260px;overflow:auto}
table.scores{border-collapse:collapse;margin-top:10px}table.scores td{padding:3px 8px}
table.scores label{margin-right:8px;cursor:pointer}textarea{width:100%;box-sizing:border-box;margin-top:6px;min-height:38px}
.slice{display:inline-block;background:#e7ecf7;border-radius:3px;padding:1px 6px;font-size:12px;margin-left:6px}
.case.current{outline:3px solid #3867d6}tr.focus td:first-child{font-weight:bold;color:#3867d6}
table.fields{border-collapse:collapse;margin-top:10px;font-size:13px}table.fields td,table.fields th{border:1px solid #d0d5dd;padding:3px 8px;text-align:left}
table.fields tr.different td,table.fields tr.missing td,table.fields tr.extra td,table.fields tr.notjson td{background:#fdecea}
table.fields tr.same td{color:#555}#keys{font-size:12px;opacity:.85}kbd{background:#fff2;border-radius:3px;padding:0 4px}
@media (max-width:1100px){header{flex-wrap:wrap;white-space:normal}.case{scroll-margin-top:140px}}
@media (max-width:800px){.texts{grid-template-columns:1fr}}
"""

_SCRIPT = """
const DIMS = __DIMS__;
const CASES = JSON.parse(document.getElementById('cases').textContent);
// Saved scores belong to exactly this set of cases: a different export never picks them up.
const KEY = 'loraflow-human-eval:' + CASES.map(c => c.id).join('|').split('').reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) >>> 0, 7);
const state = JSON.parse(localStorage.getItem(KEY) || '{}');
const raterInput = document.getElementById('rater');
raterInput.value = state.__rater || '';
function save() { state.__rater = raterInput.value.trim(); localStorage.setItem(KEY, JSON.stringify(state)); update(); }
function el(tag, attrs, text) { const e = document.createElement(tag); Object.assign(e, attrs || {}); if (text !== undefined) e.textContent = text; return e; }
function isDone(id) { const s = state[id] || {}; return DIMS.every(d => s[d]); }
function update() {
  const done = CASES.filter(c => isDone(c.id)).length;
  document.getElementById('progress').textContent = done + ' / ' + CASES.length + ' rated';
  CASES.forEach(c => document.getElementById('case-' + c.id).classList.toggle('done', isDone(c.id)));
}
function render() {
  const main = document.getElementById('cases-list');
  CASES.forEach((c, i) => {
    const s = state[c.id] = state[c.id] || {};
    const box = el('section', {className: 'case', id: 'case-' + c.id});
    const h = el('h2', {}, '#' + (i + 1) + '  id ' + c.id); h.appendChild(el('span', {className: 'slice'}, c.slice)); box.appendChild(h);
    const texts = el('div', {className: 'texts'});
    [['Input', c.input], ['Reference', c.reference], ['Model output', c.output]].forEach(([t, v]) => {
      const d = el('div'); d.appendChild(el('h3', {}, t)); d.appendChild(el('pre', {}, v)); texts.appendChild(d);
    });
    box.appendChild(texts);
    if (c.fields) {  // JSON answers: which field differs, at a glance
      const diff = el('table', {className: 'fields'});
      const head = el('tr'); ['field', 'reference', 'model output', ''].forEach(t => head.appendChild(el('th', {}, t))); diff.appendChild(head);
      c.fields.forEach(f => {
        const row = el('tr', {className: f.status.replace(' ', '').toLowerCase()});
        [f.field, f.reference, f.output, f.status].forEach(t => row.appendChild(el('td', {}, t))); diff.appendChild(row);
      });
      box.appendChild(diff);
    }
    const table = el('table', {className: 'scores'});
    DIMS.forEach(dim => {
      const row = el('tr', {id: 'row-' + c.id + '-' + dim}); row.appendChild(el('td', {}, dim));
      const cell = el('td');
      for (let v = 1; v <= 5; v++) {
        const label = el('label'); const r = el('input', {type: 'radio', name: c.id + ':' + dim, value: v, checked: s[dim] === v});
        r.addEventListener('change', () => { s[dim] = v; save(); });
        label.appendChild(r); label.appendChild(document.createTextNode(' ' + v)); cell.appendChild(label);
      }
      row.appendChild(cell); table.appendChild(row);
    });
    box.appendChild(table);
    const note = el('textarea', {placeholder: 'Comment (optional)', value: s.comment || ''});
    note.addEventListener('input', () => { s.comment = note.value; save(); });
    box.appendChild(note);
    main.appendChild(box);
  });
  update();
}
function rows() {
  const rater = raterInput.value.trim();
  return CASES.map(c => { const s = state[c.id] || {}; const r = {id: c.id, rater: rater};
    DIMS.forEach(d => r[d] = s[d] || null); r.comment = s.comment || ''; return r; });
}
function csvCell(v) { v = v === null || v === undefined ? '' : String(v); return /[",\\n\\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
function download(name, text, type) {
  const a = el('a', {href: URL.createObjectURL(new Blob([text], {type: type})), download: name});
  document.body.appendChild(a); a.click(); setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}
function fileName(ext) { return 'ratings_' + (raterInput.value.trim() || 'rater').replace(/[^A-Za-z0-9_-]+/g, '_') + '.' + ext; }
function ready() {
  if (!raterInput.value.trim()) { alert('Enter your rater name first.'); raterInput.focus(); return false; }
  const open = CASES.length - CASES.filter(c => isDone(c.id)).length;
  return open === 0 || confirm(open + ' case(s) are not fully rated; they will be skipped on import. Save anyway?');
}
document.getElementById('save-csv').addEventListener('click', () => {
  if (!ready()) return;
  const cols = ['id', 'rater'].concat(DIMS, ['comment']);
  const lines = [cols.join(',')].concat(rows().map(r => cols.map(k => csvCell(r[k])).join(',')));
  download(fileName('csv'), '\\ufeff' + lines.join('\\r\\n') + '\\r\\n', 'text/csv;charset=utf-8');
});
document.getElementById('save-jsonl').addEventListener('click', () => {
  if (!ready()) return;
  download(fileName('jsonl'), rows().map(r => JSON.stringify(r)).join('\\n') + '\\n', 'application/x-ndjson;charset=utf-8');
});
document.getElementById('clear').addEventListener('click', () => {
  if (confirm('Erase every score on this page?')) { localStorage.removeItem(KEY); location.reload(); }
});
raterInput.addEventListener('input', save);
// Keyboard: 1-5 scores the highlighted dimension and moves on; Shift+1-5 gives every dimension of the case that score;
// j/k (or arrow down/up) next/previous case; c writes a comment (Escape leaves it).
let cur = 0, dim = 0;
function focusCase(i, d) {
  cur = Math.max(0, Math.min(CASES.length - 1, i)); dim = d || 0;
  document.querySelectorAll('.case.current').forEach(e => e.classList.remove('current'));
  document.querySelectorAll('tr.focus').forEach(e => e.classList.remove('focus'));
  const box = document.getElementById('case-' + CASES[cur].id); box.classList.add('current');
  document.getElementById('row-' + CASES[cur].id + '-' + DIMS[dim]).classList.add('focus');
  box.scrollIntoView({block: 'nearest'});
}
function score(d, v) {
  const c = CASES[cur]; state[c.id][DIMS[d]] = v;
  document.querySelector('input[name="' + CSS.escape(c.id + ':' + DIMS[d]) + '"][value="' + v + '"]').checked = true;
}
document.addEventListener('keydown', e => {
  if (e.target.tagName === 'TEXTAREA' || e.target.tagName === 'INPUT' && e.target.type !== 'radio') {
    if (e.key === 'Escape') e.target.blur();
    return;
  }
  const digit = /^(?:Digit|Numpad)([1-5])$/.exec(e.code);  // the number row or the number pad
  if (digit && e.shiftKey) { DIMS.forEach((_, d) => score(d, +digit[1])); save(); focusCase(cur + 1); }
  else if (digit) { score(dim, +digit[1]); save(); dim + 1 < DIMS.length ? focusCase(cur, dim + 1) : focusCase(cur + 1); }
  else if (e.key === 'j' || e.key === 'ArrowDown') focusCase(cur + 1);
  else if (e.key === 'k' || e.key === 'ArrowUp') focusCase(cur - 1);
  else if (e.key === 'c') document.querySelector('#case-' + CSS.escape(CASES[cur].id) + ' textarea').focus();
  else return;
  e.preventDefault();
});
render();
if (CASES.length) focusCase(0);
"""


def _json_for_script(value) -> str:
    """JSON that is safe inside a <script> element: no '<' at all, so '</script>' or '<!--' in a case cannot break out."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def render_rating_page(cases: list[dict], rubric: dict[str, str], title: str = "Human evaluation") -> str:
    """The rating page: the rubric, one card per case (a field diff for JSON answers) with 1-5 radios, keys, CSV/JSONL download."""
    shown = [{**{k: case[k] for k in ("id", "slice", "input", "reference", "output")},
              "fields": json_field_diff(case["reference"], case["output"])} for case in cases]
    questions = "".join(f"<li><b>{html.escape(dim)}</b>: {html.escape(text)}</li>" for dim, text in rubric.items())
    script = _SCRIPT.replace("__DIMS__", _json_for_script(list(rubric)))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<header><h1>{html.escape(title)}</h1>
<label>Rater <input id="rater" placeholder="your name"></label>
<span id="progress"></span>
<span id="keys">keys: <kbd>1</kbd>-<kbd>5</kbd> score &amp; next · <kbd>Shift</kbd>+<kbd>1</kbd>-<kbd>5</kbd> all dimensions ·
<kbd>j</kbd>/<kbd>k</kbd> next/previous case · <kbd>c</kbd> comment</span>
<button id="save-csv">Save CSV</button><button id="save-jsonl">Save JSONL</button>
<button id="clear" class="secondary">Clear</button></header>
<main>
<details class="rubric" open><summary><b>Rubric</b>: score each dimension 1 (very poor) to 5 (excellent).
Scores are kept in this browser until you save; import the saved file with
<code>loraflow human-eval import RUN_DIR FILE</code>.</summary><ul>{questions}</ul></details>
<div id="cases-list"></div>
</main>
<script type="application/json" id="cases">{_json_for_script(shown)}</script>
<script>{script}</script>
</body></html>
"""
