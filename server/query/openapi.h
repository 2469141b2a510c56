// The OpenAPI 3 document of the query API: server/openapi.json, compiled into the binary at
// build time (cmake/embed_text.cmake) and served at GET /api/v1/openapi.json.
#pragma once

#include <string>

namespace b24es {

// The document's text. Thread-safe; lives for the whole program.
const std::string& openApiDocument();

}  // namespace b24es
