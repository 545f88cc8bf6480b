package httpapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openapiJSON is the hand-maintained OpenAPI 3 description of the API.
// openapi_test.go checks it against the registered routes both ways and
// validates real responses against its schemas, so editing a route without
// editing this document fails the tests.
//
//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the OpenAPI 3 document served at /v1/openapi.json,
// compacted.
func OpenAPI() ([]byte, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, openapiJSON); err != nil {
		return nil, fmt.Errorf("httpapi: openapi.json: %w", err)
	}
	return b.Bytes(), nil
}

func (s *Server) openapi(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", s.openapiJSON)
}
