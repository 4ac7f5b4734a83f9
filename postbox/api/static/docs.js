// Starts Swagger UI on /docs (postbox/api/docs.py) with the document named by the page.
"use strict";
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    // Off: the badge would send the document to validator.swagger.io.
    validatorUrl: null,
    docExpansion: "list",
    defaultModelsExpandDepth: 1,
    defaultModelExpandDepth: 4,
    displayRequestDuration: true,
    showExtensions: true,
    showCommonExtensions: true,
    tryItOutEnabled: false,
  });
});
