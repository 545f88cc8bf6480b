package httpapi

import (
	"bytes"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
)

// serveUI serves the web console from Config.UI. Paths that name no file
// and have no extension get index.html, so the console's own routes
// (/services/orders) load the app.
func (s *Server) serveUI(c *gin.Context) {
	p := strings.TrimPrefix(path.Clean("/"+c.Request.URL.Path), "/")
	if p == "" {
		p = "index.html"
	}
	if st, err := fs.Stat(s.cfg.UI, p); err != nil || st.IsDir() {
		if path.Ext(p) != "" {
			s.failf(c, errNoRoute, "no file %s", configsvc.Truncate(p, 200))
			return
		}
		p = "index.html"
	}
	c.Header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	c.Header("X-Frame-Options", "DENY")
	data, err := fs.ReadFile(s.cfg.UI, p)
	if err != nil {
		s.failf(c, errNoRoute, "no file %s", configsvc.Truncate(p, 200))
		return
	}
	// ServeContent sets the type from the extension, and handles HEAD and
	// ranges; http.FileServer would redirect /index.html to /.
	http.ServeContent(c.Writer, c.Request, p, time.Time{}, bytes.NewReader(data))
}
