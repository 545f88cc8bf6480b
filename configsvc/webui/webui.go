package webui

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS returns the console's files, rooted so that index.html is at the top
// ("index.html", "console.css", "js/app.js", …). httpapi.Config.UI takes it
// and serves it at /. The returned file system is read-only and safe for
// concurrent use; every call returns a view of the same embedded files.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// fs.Sub fails only for an invalid directory name; "static" is a
		// constant and is embedded above, so this cannot happen at run time.
		panic("webui: " + err.Error())
	}
	return sub
}
