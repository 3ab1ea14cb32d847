package store_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

func newDocument(name, content string) *store.Document {
	return &store.Document{
		Name: name, DocumentType: "Command", DocumentFormat: "YAML",
		SchemaVersion: "2.2", Description: "test", Content: content, CreatedAt: t0,
	}
}

func TestDocumentVersioning(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		d := newDocument("doc-a", "v1")
		require.NoError(t, s.CreateDocument(ctx, d))
		require.Equal(t, 1, d.Version)
		require.Equal(t, store.HashSecret("v1"), d.Hash)
		require.ErrorIs(t, s.CreateDocument(ctx, newDocument("doc-a", "other")), store.ErrAlreadyExists)

		err := s.UpdateDocument(ctx, newDocument("doc-a", "v1"))
		require.ErrorIs(t, err, store.ErrAlreadyExists)
		require.ErrorContains(t, err, "document content is identical to the latest version")

		u := newDocument("doc-a", "v2")
		u.DocumentType = ""
		require.NoError(t, s.UpdateDocument(ctx, u))
		require.Equal(t, 2, u.Version)
		require.Equal(t, "Command", u.DocumentType, "type taken from the document")
		// Identical to version 1 but not to the latest: allowed.
		require.NoError(t, s.UpdateDocument(ctx, newDocument("doc-a", "v1")))

		wrongType := newDocument("doc-a", "v4")
		wrongType.DocumentType = "Session"
		require.ErrorIs(t, s.UpdateDocument(ctx, wrongType), store.ErrInvalidArgument)
		require.ErrorIs(t, s.UpdateDocument(ctx, newDocument("nope", "x")), store.ErrNotFound)

		tests := []struct {
			name        string
			doc         string
			version     int
			wantVersion int
			wantContent string
			wantErr     error
		}{
			{"default", "doc-a", 0, 1, "v1", nil},
			{"explicit", "doc-a", 2, 2, "v2", nil},
			{"latest", "doc-a", 3, 3, "v1", nil},
			{"unknown version", "doc-a", 4, 0, "", store.ErrNotFound},
			{"unknown name", "doc-b", 0, 0, "", store.ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, head, err := s.GetDocument(ctx, tt.doc, tt.version)
				if tt.wantErr != nil {
					require.ErrorIs(t, err, tt.wantErr)
					return
				}
				require.NoError(t, err)
				require.Equal(t, tt.wantVersion, got.Version)
				require.Equal(t, tt.wantContent, got.Content)
				require.Equal(t, store.DocumentHead{
					Name: "doc-a", DocumentType: "Command", DefaultVersion: 1, LatestVersion: 3,
					CreatedAt: t0, UpdatedAt: t0,
				}, normHead(head))
			})
		}

		require.NoError(t, s.SetDefaultDocumentVersion(ctx, "doc-a", 2))
		got, head, err := s.GetDocument(ctx, "doc-a", 0)
		require.NoError(t, err)
		require.Equal(t, 2, got.Version)
		require.Equal(t, 2, head.DefaultVersion)
		require.ErrorIs(t, s.SetDefaultDocumentVersion(ctx, "doc-a", 9), store.ErrNotFound)
		require.ErrorIs(t, s.SetDefaultDocumentVersion(ctx, "nope", 1), store.ErrNotFound)

		vs, err := s.DocumentVersions(ctx, "doc-a")
		require.NoError(t, err)
		var versions []int
		for _, v := range vs {
			versions = append(versions, v.Version)
			require.Empty(t, v.Content, "versions are listed without content")
			require.NotEmpty(t, v.Hash)
			require.Equal(t, "YAML", v.DocumentFormat)
		}
		require.Equal(t, []int{1, 2, 3}, versions)
		_, err = s.DocumentVersions(ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

// normHead drops the time zone PostgreSQL and SQLite attach differently.
func normHead(h store.DocumentHead) store.DocumentHead {
	h.CreatedAt = h.CreatedAt.UTC()
	h.UpdatedAt = h.UpdatedAt.UTC()
	return h
}

func TestDeleteDocument(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		require.NoError(t, s.CreateDocument(ctx, newDocument("doc-a", "v1")))
		require.NoError(t, s.UpdateDocument(ctx, newDocument("doc-a", "v2")))
		require.NoError(t, s.UpdateDocument(ctx, newDocument("doc-a", "v3")))

		steps := []struct {
			name        string
			version     int
			wantErr     error
			wantLatest  int
			wantVersion []int
		}{
			{"default version", 1, store.ErrInvalidArgument, 3, []int{1, 2, 3}},
			{"latest", 3, nil, 2, []int{1, 2}},
			{"gone", 3, store.ErrNotFound, 2, []int{1, 2}},
			{"never existed", 7, store.ErrNotFound, 2, []int{1, 2}},
		}
		for _, st := range steps {
			err := s.DeleteDocument(ctx, "doc-a", st.version)
			if st.wantErr != nil {
				require.ErrorIs(t, err, st.wantErr, st.name)
			} else {
				require.NoError(t, err, st.name)
			}
			_, head, err := s.GetDocument(ctx, "doc-a", 0)
			require.NoError(t, err)
			require.Equal(t, st.wantLatest, head.LatestVersion, st.name)
			vs, err := s.DocumentVersions(ctx, "doc-a")
			require.NoError(t, err)
			var got []int
			for _, v := range vs {
				got = append(got, v.Version)
			}
			require.Equal(t, st.wantVersion, got, st.name)
		}
		require.ErrorContains(t, s.DeleteDocument(ctx, "doc-a", 1), "cannot delete the default version")

		// The next update continues from the highest remaining version.
		u := newDocument("doc-a", "v3 again")
		require.NoError(t, s.UpdateDocument(ctx, u))
		require.Equal(t, 3, u.Version)

		// Deleting a non-latest, non-default version keeps Latest.
		require.NoError(t, s.DeleteDocument(ctx, "doc-a", 2))
		_, head, err := s.GetDocument(ctx, "doc-a", 0)
		require.NoError(t, err)
		require.Equal(t, 3, head.LatestVersion)

		require.NoError(t, s.DeleteDocument(ctx, "doc-a", 0))
		_, _, err = s.GetDocument(ctx, "doc-a", 0)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.DocumentVersions(ctx, "doc-a")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, s.DeleteDocument(ctx, "doc-a", 0), store.ErrNotFound)
		require.ErrorIs(t, s.DeleteDocument(ctx, "doc-a", 1), store.ErrNotFound)

		// The name is free again.
		d := newDocument("doc-a", "fresh")
		require.NoError(t, s.CreateDocument(ctx, d))
		require.Equal(t, 1, d.Version)
	})
}

func TestUpdateDocumentConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		require.NoError(t, s.CreateDocument(ctx, newDocument("doc-c", "v1")))
		const n = 8
		versions := make([]int, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				d := newDocument("doc-c", fmt.Sprintf("content %d", i))
				errs[i] = s.UpdateDocument(ctx, d)
				versions[i] = d.Version
			})
		}
		wg.Wait()
		seen := map[int]bool{}
		for i := range n {
			require.NoError(t, errs[i])
			require.False(t, seen[versions[i]], "version %d given twice", versions[i])
			seen[versions[i]] = true
			require.GreaterOrEqual(t, versions[i], 2)
			require.LessOrEqual(t, versions[i], n+1)
		}
		_, head, err := s.GetDocument(ctx, "doc-c", 0)
		require.NoError(t, err)
		require.Equal(t, n+1, head.LatestVersion)
		vs, err := s.DocumentVersions(ctx, "doc-c")
		require.NoError(t, err)
		require.Len(t, vs, n+1)
	})
}

func TestListDocuments(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for _, d := range []struct{ name, typ string }{
			{"app-deploy", "Command"},
			{"app-restart", "Command"},
			{"app_x", "Command"},
			{"appxy", "Command"},
			{"apq-other", "Command"},
			{"shell", "Session"},
			{"Upper-case", "Command"},
			{"100%-done", "Command"},
			{"100x-done", "Command"},
		} {
			doc := newDocument(d.name, "c-"+d.name)
			doc.DocumentType = d.typ
			require.NoError(t, s.CreateDocument(ctx, doc))
		}
		names := func(hs []store.DocumentHead) []string {
			out := []string{}
			for _, h := range hs {
				out = append(out, h.Name)
			}
			return out
		}
		tests := []struct {
			name string
			f    store.DocumentFilter
			want []string
		}{
			{"prefix", store.DocumentFilter{NamePrefix: "app-"}, []string{"app-deploy", "app-restart"}},
			{"underscore is literal", store.DocumentFilter{NamePrefix: "app_"}, []string{"app_x"}},
			{"percent is literal", store.DocumentFilter{NamePrefix: "100%"}, []string{"100%-done"}},
			{"case-sensitive", store.DocumentFilter{NamePrefix: "upper"}, []string{}},
			{"exact case", store.DocumentFilter{NamePrefix: "Upper"}, []string{"Upper-case"}},
			{"type", store.DocumentFilter{DocumentType: "Session"}, []string{"shell"}},
			{"type and prefix", store.DocumentFilter{DocumentType: "Session", NamePrefix: "app"}, []string{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, next, err := s.ListDocuments(ctx, tt.f)
				require.NoError(t, err)
				require.Empty(t, next)
				require.Equal(t, tt.want, names(got))
			})
		}

		all, _, err := s.ListDocuments(ctx, store.DocumentFilter{DocumentType: "Command"})
		require.NoError(t, err)
		require.Len(t, all, 8)
		for _, size := range []int{1, 3, 8, 50} {
			t.Run(fmt.Sprintf("pages of %d", size), func(t *testing.T) {
				var got []string
				tok := ""
				for range 20 {
					page, next, err := s.ListDocuments(ctx, store.DocumentFilter{DocumentType: "Command", MaxResults: size, NextToken: tok})
					require.NoError(t, err)
					require.LessOrEqual(t, len(page), size)
					got = append(got, names(page)...)
					if next == "" {
						break
					}
					tok = next
				}
				require.Equal(t, names(all), got)
			})
		}
		_, _, err = s.ListDocuments(ctx, store.DocumentFilter{NextToken: "!!"})
		require.ErrorIs(t, err, store.ErrInvalidArgument)
	})
}
