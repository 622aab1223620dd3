// /docs: Swagger UI on the spec the server embeds. "Try it out" calls this
// server; its Authorize button takes a bearer token for this page only.
window.addEventListener("DOMContentLoaded", () => {
  window.SwaggerUIBundle({
    url: "/docs/openapi.yaml",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    defaultModelsExpandDepth: 0,
  });
});
