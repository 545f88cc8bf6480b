package configsvc

import (
	"context"
	"errors"
)

// InstanceReader is what LiveInstances reads: the live instances of a
// service and the services that link a group. Every Store is one.
type InstanceReader interface {
	Instances(ctx context.Context, svc string) ([]Instance, error)
	Users(ctx context.Context, group string) ([]string, error)
}

// LiveInstances returns the live instances a gray of ref can reach, for
// Gray.Cohort: the instances of the service, or of every service that
// links the group (a service deleted meanwhile has none). The admin
// server's cohort views and promote check and the rollout driver all read
// them through it. Errors are the reader's.
func LiveInstances(ctx context.Context, st InstanceReader, ref Ref) ([]Instance, error) {
	if ref.Kind == KindService {
		return st.Instances(ctx, ref.Name)
	}
	users, err := st.Users(ctx, ref.Name)
	if err != nil {
		return nil, err
	}
	var out []Instance
	for _, svc := range users {
		list, err := st.Instances(ctx, svc)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		out = append(out, list...)
	}
	return out, nil
}
