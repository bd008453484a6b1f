// The API reference page: fetches /openapi.json and lays out every operation by tag. Text from
// the document is set with textContent only, never parsed as HTML.
(function () {
  'use strict';
  var METHODS = ['get', 'post', 'put', 'patch', 'delete'];

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function schemaBlock(title, schema, example) {
    var box = el('div');
    box.appendChild(el('h4', title));
    box.appendChild(el('pre', JSON.stringify(schema, null, 2)));
    if (example !== undefined) {
      box.appendChild(el('h4', 'Example'));
      box.appendChild(el('pre', JSON.stringify(example, null, 2)));
    }
    return box;
  }

  function parameters(op) {
    var table = el('table');
    var head = el('tr');
    ['name', 'in', 'required', 'type'].forEach(function (h) {
      head.appendChild(el('th', h));
    });
    table.appendChild(head);
    op.parameters.forEach(function (p) {
      var row = el('tr');
      var schema = p.schema || {};
      var type = schema.enum ? schema.enum.join(' | ') : schema.type || '';
      [p.name, p.in, p.required ? 'yes' : 'no', type].forEach(function (v) {
        row.appendChild(el('td', String(v)));
      });
      table.appendChild(row);
    });
    return table;
  }

  function operation(path, method, op) {
    var section = el('section', undefined, 'op');
    var h = el('h3');
    h.appendChild(el('span', method.toUpperCase(), 'method ' + method.toUpperCase()));
    h.appendChild(document.createTextNode(path));
    section.appendChild(h);
    if (op.summary) section.appendChild(el('p', op.summary));
    if (op.parameters && op.parameters.length > 0) section.appendChild(parameters(op));
    var body = op.requestBody?.content?.['application/json'];
    if (body) section.appendChild(schemaBlock('Request body', body.schema, body.example));
    Object.keys(op.responses || {}).forEach(function (status) {
      var response = op.responses[status];
      var content = response.content && (response.content['application/json'] || response.content[Object.keys(response.content)[0]]);
      if (content?.schema) section.appendChild(schemaBlock(status + ' ' + (response.description || ''), content.schema, content.example));
      else section.appendChild(el('h4', status + ' ' + (response.description || '')));
    });
    return section;
  }

  function render(doc) {
    document.getElementById('title').textContent = doc.info.title + ' API reference (' + doc.info.version + ')';
    document.getElementById('description').textContent = doc.info.description || '';
    var byTag = {};
    Object.keys(doc.paths)
      .sort()
      .forEach(function (path) {
        METHODS.forEach(function (method) {
          var op = doc.paths[path][method];
          if (!op) return;
          var tag = op.tags?.[0] || 'Other';
          (byTag[tag] = byTag[tag] || []).push(operation(path, method, op));
        });
      });
    var main = document.getElementById('operations');
    var toc = document.getElementById('toc');
    main.textContent = '';
    Object.keys(byTag)
      .sort()
      .forEach(function (tag, i) {
        var id = 'tag-' + i;
        var link = el('a', tag);
        link.href = '#' + id;
        toc.appendChild(link);
        var heading = el('h2', tag);
        heading.id = id;
        main.appendChild(heading);
        byTag[tag].forEach(function (section) {
          main.appendChild(section);
        });
      });
  }

  fetch('/openapi.json')
    .then(function (res) {
      return res.json();
    })
    .then(render)
    .catch(function (err) {
      document.getElementById('operations').textContent = 'Could not load /openapi.json: ' + err;
    });
})();
