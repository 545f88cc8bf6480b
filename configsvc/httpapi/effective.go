package httpapi

import (
	"context"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// effective answers GET /v1/services/{svc}/effective: the service's files
// and the files of every group it links, named as its SDK sees them
// ("db.yaml", "redis-common/redis.yaml"), each with the revision of its
// service or group and its content, sorted by name. Reading the service is
// enough: whoever may read a service may read the groups it links (their
// SDK sees them). A group is read at its head, like the SDK does.
func (s *Server) effective(c *gin.Context) {
	ref, ok := s.refParam(c, configsvc.KindService)
	if !ok || !s.authorizeRead(c, ref) {
		return
	}
	ctx := c.Request.Context()
	h, files, err := s.headFiles(ctx, ref)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := api.EffectiveConfig{Service: ref.Name, Revision: h.Revision, Links: append([]string{}, h.Links...), Files: []api.EffectiveFile{}}
	out.Files = appendEffective(out.Files, "", ref, h, files)
	p := state(c).principal
	for _, g := range h.Links {
		gref := configsvc.Group(g)
		if !s.authz.Decide(p, access.ActionRead, access.Target{Ref: gref, Users: []string{ref.Name}}).Allowed {
			continue
		}
		gh, gfiles, err := s.headFiles(ctx, gref)
		if isNotFound(err) {
			continue // unlinked and deleted since the service's head was read
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		out.Files = appendEffective(out.Files, g+"/", gref, gh, gfiles)
	}
	slices.SortFunc(out.Files, func(a, b api.EffectiveFile) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	c.JSON(http.StatusOK, out)
}

// headFiles reads the head of ref and the content of its files there.
func (s *Server) headFiles(ctx context.Context, ref configsvc.Ref) (configsvc.Head, map[string][]byte, error) {
	h, err := s.cfg.Store.Head(ctx, ref)
	if err != nil || h.Revision == 0 {
		return h, nil, err
	}
	if files, ok := s.snapshots.get(ref, h.Revision); ok {
		return h, files, nil
	}
	sn, err := s.cfg.Store.Snapshot(ctx, ref, h.Revision)
	if err != nil {
		return h, nil, err
	}
	s.snapshots.put(ref, h.Revision, sn.Files)
	return h, sn.Files, nil
}

func appendEffective(out []api.EffectiveFile, prefix string, ref configsvc.Ref, h configsvc.Head, files map[string][]byte) []api.EffectiveFile {
	for name, content := range files {
		out = append(out, api.EffectiveFile{Name: prefix + name, Ref: ref.String(), File: name, Revision: h.Revision,
			FileRevision: h.Files[name].Revision, Format: configsvc.FormatOf(name), Content: string(content)})
	}
	return out
}
