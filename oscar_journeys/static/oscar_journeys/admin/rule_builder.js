/* The rule builder of oscar_journeys (admin/rule_builder.py).
 *
 * Turns each .journeys-rule-builder's JSON textarea into rows of conditions (field,
 * operator, value; for target groups also event conditions) and writes the rows back to
 * the textarea as JSON on every change: the server validates what is sent, as without
 * JavaScript. With data-count-url, the rules are posted there (CSRF token of the form) and
 * the count and preview it answers are shown in #journeys-members.
 */
(function () {
  "use strict";

  function el(tag, props, children) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      if (key === "text") node.textContent = props[key];
      else if (key === "className") node.className = props[key];
      else node.setAttribute(key, props[key]);
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  function option(value, label, selected) {
    var node = el("option", {value: String(value), text: label});
    node.selected = !!selected;
    return node;
  }

  function Builder(root) {
    this.root = root;
    this.spec = JSON.parse(document.getElementById(root.dataset.spec).textContent);
    this.texts = this.spec.texts;
    this.textarea = root.querySelector("textarea");
    this.rowsBox = root.querySelector(".journeys-rule-rows");
    this.fields = {};
    var fields = this.fields;
    this.spec.groups.forEach(function (group) {
      group.fields.forEach(function (field) { fields[field.name] = field; });
    });
    this.countUrl = root.dataset.countUrl || "";
    this.timer = null;
  }

  Builder.prototype.start = function () {
    var rules;
    try {
      rules = JSON.parse(this.textarea.value || "[]");
    } catch (error) {
      rules = null;
    }
    var toggle = el("button", {type: "button", className: "button journeys-rule-toggle", text: this.texts.edit_json});
    toggle.addEventListener("click", this.toggle.bind(this, toggle));
    this.root.insertBefore(toggle, this.textarea);
    this.textarea.addEventListener("input", this.scheduleCount.bind(this));
    if (!Array.isArray(rules) || !rules.every(this.understood.bind(this))) {
      if (rules === null) this.root.insertBefore(el("p", {className: "help", text: this.texts.bad_json}), toggle);
      toggle.textContent = this.texts.edit_rows;
    } else {
      this.showRows(rules);
    }
    this.count();
  };

  // Rows can show a rule only if they know its field (or it is an event condition).
  Builder.prototype.understood = function (rule) {
    if (!rule || typeof rule !== "object") return false;
    if ("event" in rule) return !!this.spec.events;
    return rule.field in this.fields;
  };

  Builder.prototype.toggle = function (button) {
    if (this.rowsBox.hidden) {
      var rules;
      try { rules = JSON.parse(this.textarea.value || "[]"); } catch (error) { return; }
      if (!Array.isArray(rules) || !rules.every(this.understood.bind(this))) return;
      this.showRows(rules);
      button.textContent = this.texts.edit_json;
    } else {
      this.rowsBox.hidden = true;
      this.textarea.hidden = false;
      button.textContent = this.texts.edit_rows;
    }
  };

  Builder.prototype.showRows = function (rules) {
    var self = this;
    this.rowsBox.textContent = "";
    this.list = el("ol", {className: "journeys-rule-list"});
    this.empty = el("p", {className: "help", text: this.texts.everyone});
    rules.forEach(function (rule) { self.addRow(rule); });
    var add = el("button", {type: "button", className: "button", text: this.texts.add_field});
    add.addEventListener("click", function () { self.addRow({}); self.changed(); });
    var buttons = el("div", {className: "journeys-rule-add"}, [add]);
    if (this.spec.events) {
      var addEvent = el("button", {type: "button", className: "button", text: this.texts.add_event});
      var codes = self.spec.events.map(function (pair) { return pair[0]; });
      var first = ["product_ordered", "order_placed"].filter(function (code) { return codes.indexOf(code) >= 0; })[0];
      addEvent.addEventListener("click", function () {
        self.addRow({event: first || codes[0], within_days: 30, op: ">=", value: 1});
        self.changed();
      });
      buttons.appendChild(addEvent);
    }
    this.rowsBox.appendChild(this.list);
    this.rowsBox.appendChild(this.empty);
    this.rowsBox.appendChild(buttons);
    this.rowsBox.hidden = false;
    this.textarea.hidden = true;
    this.empty.hidden = rules.length > 0;
  };

  Builder.prototype.addRow = function (rule) {
    var self = this, row = el("li", {className: "journeys-rule"});
    row.rule = rule;
    // Typing in a value or picking one; the field and operator menus redraw the row first.
    row.addEventListener("input", function () { self.changed(); });
    row.addEventListener("change", function () { self.changed(); });
    this.list.appendChild(row);
    this.drawRow(row);
    this.empty.hidden = true;
  };

  Builder.prototype.drawRow = function (row) {
    var self = this, rule = row.rule;
    row.textContent = "";
    row.read = null;
    if ("event" in rule) this.drawEvent(row, rule); else this.drawField(row, rule);
    var remove = el("button", {type: "button", className: "button journeys-rule-remove", text: this.texts.remove});
    remove.addEventListener("click", function () { row.remove(); self.changed(); });
    row.appendChild(remove);
  };

  Builder.prototype.operatorSelect = function (codes, current) {
    var ops = this.spec.operators, select = el("select", {"aria-label": this.texts.operator});
    codes.forEach(function (code) { select.appendChild(option(code, ops[code].label, code === current)); });
    return select;
  };

  Builder.prototype.drawField = function (row, rule) {
    var self = this, fields = this.fields;
    var fieldSelect = el("select", {"aria-label": this.texts.field});
    if (!(rule.field in fields)) rule.field = this.spec.groups[0].fields[0].name;
    this.spec.groups.forEach(function (group) {
      var optgroup = el("optgroup", {label: group.label});
      group.fields.forEach(function (field) { optgroup.appendChild(option(field.name, field.label, field.name === rule.field)); });
      fieldSelect.appendChild(optgroup);
    });
    var field = fields[rule.field];
    var codes = Object.keys(this.spec.operators).filter(function (code) {
      return self.spec.operators[code].kinds.indexOf(field.kind) >= 0;
    });
    if (codes.indexOf(rule.op) < 0) rule.op = codes[0];
    var opSelect = this.operatorSelect(codes, rule.op);
    var value = this.valueInput(field, this.spec.operators[rule.op].takes, rule.value);
    fieldSelect.addEventListener("change", function () {
      row.rule = {field: fieldSelect.value};
      self.drawRow(row);
      self.changed();
    });
    opSelect.addEventListener("change", function () {
      row.rule = {field: rule.field, op: opSelect.value, value: row.read().value};
      self.drawRow(row);
      self.changed();
    });
    row.appendChild(fieldSelect);
    row.appendChild(opSelect);
    if (value) row.appendChild(value.node);
    row.read = function () {
      var out = {field: rule.field, op: opSelect.value};
      if (value) out.value = value.read();
      return out;
    };
  };

  Builder.prototype.drawEvent = function (row, rule) {
    var self = this, texts = this.texts;
    var typeSelect = el("select", {"aria-label": texts.event});
    this.spec.events.forEach(function (pair) { typeSelect.appendChild(option(pair[0], pair[1], pair[0] === rule.event)); });
    var category = el("input", {type: "text", placeholder: texts.any_category, "aria-label": texts.category});
    category.value = rule.category || "";
    var days = el("input", {type: "number", min: "1", max: String(this.spec.max_days), step: "1", className: "vIntegerField",
                            "aria-label": texts.days});
    days.value = rule.within_days === undefined ? "" : String(rule.within_days);
    var codes = this.spec.event_operators;
    var opSelect = this.operatorSelect(codes, codes.indexOf(rule.op) >= 0 ? rule.op : ">=");
    var count = el("input", {type: "number", min: "0", step: "1", className: "vIntegerField", "aria-label": texts.count});
    count.value = rule.value === undefined ? "" : String(rule.value);
    [typeSelect, category, el("span", {text: texts.in_the_last}), days, el("span", {text: texts.days + ":"}),
     el("span", {text: texts.count}), opSelect, count].forEach(function (node) { row.appendChild(node); });
    row.read = function () {
      var out = {event: typeSelect.value, within_days: self.number(days.value), op: opSelect.value,
                 value: self.number(count.value)};
      if (category.value.trim()) out.category = category.value.trim();
      return out;
    };
  };

  // A number where the text is one; the text itself otherwise (the server then says what is wrong).
  Builder.prototype.number = function (text) {
    var trimmed = String(text).trim();
    return trimmed !== "" && !isNaN(Number(trimmed)) ? Number(trimmed) : trimmed;
  };

  Builder.prototype.valueInput = function (field, takes, current) {
    var self = this, texts = this.texts, node;
    if (takes === "none") return null;
    var numeric = field.kind === "int" || field.kind === "float";
    var convert = function (text) { return numeric ? self.number(text) : text; };
    if (field.kind === "bool") {
      node = el("select", {"aria-label": texts.value}, [option("true", texts.yes, current === true),
                                                    option("false", texts.no, current === false)]);
      return {node: node, read: function () { return node.value === "true"; }};
    }
    if (field.choices.length) {
      var wanted = (Array.isArray(current) ? current : [current]).map(String);
      node = el("select", {"aria-label": texts.value});
      if (takes === "list") node.multiple = true;
      field.choices.forEach(function (pair) { node.appendChild(option(pair[0], pair[1], wanted.indexOf(String(pair[0])) >= 0)); });
      return {node: node, read: function () {
        var picked = Array.prototype.filter.call(node.options, function (o) { return o.selected; })
          .map(function (o) { return convert(o.value); });
        return takes === "list" ? picked : picked[0];
      }};
    }
    if (takes === "list" || field.kind === "list") {
      node = el("input", {type: "text", placeholder: texts.list_help, "aria-label": texts.value});
      node.value = Array.isArray(current) ? current.join(", ") : (current === undefined ? "" : String(current));
      return {node: node, read: function () {
        var items = node.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean).map(convert);
        return takes === "list" || items.length !== 1 ? items : items[0];
      }};
    }
    node = el("input", numeric ? {type: "number", step: "any", "aria-label": texts.value} : {type: "text", "aria-label": texts.value});
    node.value = current === undefined || current === null ? "" : String(current);
    return {node: node, read: function () { return convert(node.value); }};
  };

  Builder.prototype.rules = function () {
    return Array.prototype.map.call(this.list.children, function (row) { return row.read(); });
  };

  Builder.prototype.changed = function () {
    var rules = this.rules();
    this.empty.hidden = rules.length > 0;
    this.textarea.value = JSON.stringify(rules);
    this.scheduleCount();
  };

  Builder.prototype.scheduleCount = function () {
    if (!this.countUrl) return;
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(this.count.bind(this), 700);
  };

  // --- the live count and preview ------------------------------------------------------

  Builder.prototype.count = function () {
    var box = document.getElementById("journeys-members");
    if (!this.countUrl || !box) return;
    var status = box.querySelector(".journeys-members-status"), table = box.querySelector("table");
    var form = this.root.closest("form"), token = form && form.querySelector("[name=csrfmiddlewaretoken]");
    var body = new FormData();
    body.append("rules", this.textarea.value || "[]");
    if (box.dataset.group) body.append("group", box.dataset.group);
    status.textContent = this.texts.counting;
    status.classList.remove("errornote");
    var texts = this.texts, sent = this.sent = {};
    var self = this;
    fetch(this.countUrl, {method: "POST", body: body, credentials: "same-origin",
                          headers: {"X-CSRFToken": token ? token.value : "", "Accept": "application/json"}})
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (sent !== self.sent) return;  // a newer count is on its way
        self.showCount(status, table, data);
      })
      .catch(function () {
        status.textContent = texts.count_failed;
        status.classList.add("errornote");
      });
  };

  Builder.prototype.showCount = function (status, table, data) {
    table.textContent = "";
    if (data.error) {
      status.textContent = data.error;
      status.classList.add("errornote");
      table.hidden = true;
      return;
    }
    status.textContent = data.summary;
    if (!data.rows || !data.rows.length) {
      table.hidden = true;
      return;
    }
    var head = el("tr", {}, [el("th", {scope: "col", text: this.texts.customer})]);
    data.columns.forEach(function (label) { head.appendChild(el("th", {scope: "col", text: label})); });
    var body = el("tbody");
    data.rows.forEach(function (row) {
      var link = el("a", {href: row.url, text: row.name});
      var tr = el("tr", {}, [el("td", {}, [link])]);
      row.values.forEach(function (value) { tr.appendChild(el("td", {text: value})); });
      body.appendChild(tr);
    });
    table.appendChild(el("thead", {}, [head]));
    table.appendChild(body);
    table.hidden = false;
  };

  function startAll() {
    document.querySelectorAll(".journeys-rule-builder").forEach(function (root) {
      if (!root.dataset.started) {
        root.dataset.started = "1";
        new Builder(root).start();
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();
