/* wwhub static site: sortable tables and the index's leaderboard (filters, sort, pages), from local data only.
   Data is only ever written with textContent: names from cards and repos are shown as text, never parsed. */
(function () {
  'use strict';

  function compare(x, y) {
    var empty = (x === '' || x === null || x === undefined), emptyY = (y === '' || y === null || y === undefined);
    if (empty || emptyY) { return empty === emptyY ? 0 : (empty ? 1 : -1); }
    var nx = Number(x), ny = Number(y);
    if (!isNaN(nx) && !isNaN(ny)) { return nx - ny; }
    return String(x).localeCompare(String(y));
  }

  function sortableTables() {
    document.querySelectorAll('table.sortable').forEach(function (table) {
      table.querySelectorAll('thead th').forEach(function (th, col) {
        th.addEventListener('click', function () {
          var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
          var asc = th.dataset.sort !== 'asc';
          table.querySelectorAll('thead th').forEach(function (h) { h.dataset.sort = ''; });
          th.dataset.sort = asc ? 'asc' : 'desc';
          function value(row) {
            var cell = row.cells[col];
            if (!cell) { return ''; }
            return cell.hasAttribute('data-v') ? cell.getAttribute('data-v') : cell.textContent;
          }
          rows.sort(function (a, b) {
            var x = value(a), y = value(b), empty = (x === '') - (y === '');
            return empty !== 0 ? empty : (asc ? compare(x, y) : compare(y, x));
          });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      });
    });
  }

  var PAGE_ROWS = 100;

  function leaderboard(board) {
    var table = document.getElementById('board'), form = document.getElementById('board-filters');
    if (!table || !form || !board) { return; }
    var columns = board.columns, rows = board.rows, page = 0, sortBy = null, ascending = true;
    var index = {};
    columns.forEach(function (c, i) { index[c.key] = i; });
    var linkColumn = columns.length;  // each row ends with its page

    var head = document.createElement('tr');
    columns.forEach(function (c, i) {
      var th = document.createElement('th');
      // Long column names break after their underscores, so the table fits a window.
      String(c.label).split('_').forEach(function (part, k) {
        if (k) { th.appendChild(document.createTextNode('_')); th.appendChild(document.createElement('wbr')); }
        th.appendChild(document.createTextNode(part));
      });
      th.dataset.key = c.key;
      th.addEventListener('click', function () {
        ascending = sortBy === i ? !ascending : true;
        sortBy = i;
        page = 0;
        draw();
      });
      head.appendChild(th);
    });
    table.tHead.appendChild(head);

    function readHash() {
      var params = new URLSearchParams(location.hash.slice(1));
      ['family', 'q', 'quantization', 'kind'].forEach(function (name) {
        if (params.has(name)) { form.elements[name].value = params.get(name); }
      });
    }
    function writeHash() {
      var params = new URLSearchParams();
      if (form.elements.family.value) { params.set('family', form.elements.family.value); }
      if (form.elements.q.value) { params.set('q', form.elements.q.value); }
      if (form.elements.quantization.value !== '*') { params.set('quantization', form.elements.quantization.value); }
      if (form.elements.kind.value !== '*') { params.set('kind', form.elements.kind.value); }
      var text = params.toString();
      history.replaceState(null, '', text ? '#' + text : location.pathname);
    }

    function selected() {
      var family = form.elements.family.value, text = form.elements.q.value.trim().toLowerCase();
      var quant = form.elements.quantization.value, kind = form.elements.kind.value;
      var out = rows.filter(function (r) {
        return (!family || r[index.family] === family) &&
          (!text || String(r[index.repo_id]).toLowerCase().indexOf(text) !== -1) &&
          (quant === '*' || (r[index.quantization] || '') === quant) &&
          (kind === '*' || (r[index.model_kind] || '') === kind);
      });
      if (sortBy !== null) {
        out = out.slice().sort(function (a, b) {
          var x = a[sortBy], y = b[sortBy], none = (x === null || x === '') - (y === null || y === '');
          return none !== 0 ? none : (ascending ? compare(x, y) : compare(y, x));
        });
      }
      return out;
    }

    function cell(row, c, i) {
      var td = document.createElement('td'), value = row[i];
      if (c.type === 'link') {
        var a = document.createElement('a');
        a.href = row[linkColumn];
        a.textContent = value;
        td.appendChild(a);
      } else if (c.type === 'num') {
        td.textContent = value === null ? '' : (Number.isInteger(value) ? String(value) : Number(value).toPrecision(4));
      } else {
        td.textContent = value === null ? '' : value;
      }
      if (c.type !== 'num') { td.className = c.type === 'link' ? 'text link' : 'text'; }
      return td;
    }

    function draw() {
      var shown = selected(), body = table.tBodies[0], pages = Math.max(1, Math.ceil(shown.length / PAGE_ROWS));
      page = Math.min(page, pages - 1);
      var fragment = document.createDocumentFragment();
      shown.slice(page * PAGE_ROWS, (page + 1) * PAGE_ROWS).forEach(function (row) {
        var tr = document.createElement('tr');
        columns.forEach(function (c, i) { tr.appendChild(cell(row, c, i)); });
        fragment.appendChild(tr);
      });
      body.replaceChildren(fragment);
      head.querySelectorAll('th').forEach(function (th, i) {
        th.dataset.sort = i === sortBy ? (ascending ? 'asc' : 'desc') : '';
      });
      var first = shown.length ? page * PAGE_ROWS + 1 : 0, last = Math.min(shown.length, (page + 1) * PAGE_ROWS);
      document.getElementById('board-count').textContent =
        shown.length + ' of ' + rows.length + ' models' + (shown.length > PAGE_ROWS ? ' (showing ' + first + '-' + last + ')' : '');
      pager(pages);
    }

    function pager(pages) {
      var box = document.getElementById('board-pager');
      box.replaceChildren();
      if (pages < 2) { return; }
      [['first', 0], ['previous', page - 1], ['next', page + 1], ['last', pages - 1]].forEach(function (b) {
        var button = document.createElement('button');
        button.type = 'button';
        button.textContent = b[0];
        button.disabled = b[1] < 0 || b[1] >= pages || b[1] === page;
        button.addEventListener('click', function () { page = b[1]; draw(); });
        box.appendChild(button);
      });
      box.appendChild(document.createTextNode('page ' + (page + 1) + ' of ' + pages));
    }

    readHash();
    form.addEventListener('input', function () { page = 0; writeHash(); draw(); });
    window.addEventListener('hashchange', function () { readHash(); page = 0; draw(); });
    draw();
  }

  sortableTables();
  leaderboard(window.WWHUB_BOARD);
}());
