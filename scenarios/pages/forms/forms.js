// Shared behaviour of the form pages: load drop-down options from the API, submit as JSON.
(function () {
  async function loadOptions() {
    for (const select of document.querySelectorAll('select[data-source]')) {
      const response = await fetch(select.dataset.source);
      const options = await response.json();
      for (const item of options) {
        const option = document.createElement('option');
        option.value = item.value;
        option.textContent = item.label;
        select.appendChild(option);
      }
    }
  }

  function collect(form) {
    const fields = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      fields[el.name] = el.type === 'checkbox' ? el.checked : el.value;
    }
    return fields;
  }

  document.addEventListener('DOMContentLoaded', function () {
    loadOptions();
    const form = document.querySelector('form');
    const result = document.getElementById('result');
    form.addEventListener('submit', async function (event) {
      event.preventDefault();
      const response = await fetch('/api/forms/submit', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ form: form.dataset.form, fields: collect(form) }),
      });
      const data = await response.json();
      if (data.ok) {
        form.hidden = true;
        result.textContent = 'Thank you! Your reference is ' + data.reference + '.';
      } else {
        result.textContent = 'Something went wrong: ' + (data.error || response.status);
      }
      result.hidden = false;
    });
  });
})();
