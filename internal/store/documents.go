package store

import (
	"context"
	"fmt"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// documentColumnsNoContent are the documents columns DocumentVersions reads:
// every one but the (up to 64 KB) content.
var documentColumnsNoContent = []string{
	"name", "version", "document_type", "document_format", "schema_version",
	"description", "hash", "created_by", "created_at",
}

// CreateDocument inserts version 1 of d and its DocumentHead (default and
// latest version 1) in one transaction. It sets d.Version to 1, d.Hash to the
// SHA-256 of d.Content when empty, and d.CreatedAt to now when zero. A name
// that exists yields ErrAlreadyExists.
func (s *Store) CreateDocument(ctx context.Context, d *Document) error {
	op := fmt.Sprintf("create document %s", d.Name)
	if d.Name == "" {
		return classify(op, invalid("document name is empty"))
	}
	row := *d
	row.Version = 1
	fillDocument(s, &row)
	head := DocumentHead{
		Name:           row.Name,
		DocumentType:   row.DocumentType,
		DefaultVersion: 1,
		LatestVersion:  1,
		CreatedAt:      row.CreatedAt,
		UpdatedAt:      row.CreatedAt,
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The head first: its primary key is what rejects a second create.
		if err := tx.Create(&head).Error; err != nil {
			return err
		}
		return tx.Create(&row).Error
	})
	if err != nil {
		return classify(op, err)
	}
	*d = row
	return nil
}

// fillDocument defaults d's Hash and CreatedAt and normalises the time.
func fillDocument(s *Store, d *Document) {
	if d.Hash == "" {
		d.Hash = HashSecret(d.Content)
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = s.db.NowFunc()
	}
	d.CreatedAt = d.CreatedAt.UTC()
}

// UpdateDocument appends d as the document's next version (LatestVersion+1,
// set in d.Version) and makes it the latest; the default version does not
// change. An empty d.DocumentType takes the document's; a different one
// yields ErrInvalidArgument. Content identical to the latest version's (same
// Hash) yields an error wrapping ErrAlreadyExists (SSM's
// DuplicateDocumentContent). An unknown name yields ErrNotFound.
//
// The head row is locked for the transaction (PostgreSQL; SQLite's
// IMMEDIATE transactions serialise writers anyway), so concurrent updates
// get distinct, consecutive versions.
func (s *Store) UpdateDocument(ctx context.Context, d *Document) error {
	op := fmt.Sprintf("update document %s", d.Name)
	row := *d
	fillDocument(s, &row)
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var head DocumentHead
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("name = ?", row.Name).Take(&head).Error; err != nil {
			return err
		}
		switch row.DocumentType {
		case "":
			row.DocumentType = head.DocumentType
		case head.DocumentType:
		default:
			return invalid("document %s is of type %s, not %s", row.Name, head.DocumentType, row.DocumentType)
		}
		var latestHash string
		if err := tx.Model(&Document{}).Where("name = ? AND version = ?", row.Name, head.LatestVersion).
			Pluck("hash", &latestHash).Error; err != nil {
			return err
		}
		if latestHash == row.Hash {
			return fmt.Errorf("document content is identical to the latest version: %w", ErrAlreadyExists)
		}
		row.Version = head.LatestVersion + 1
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		return tx.Model(&DocumentHead{}).Where("name = ?", row.Name).
			Updates(map[string]any{"latest_version": row.Version, "updated_at": row.CreatedAt}).Error
	})
	if err != nil {
		return classify(op, err)
	}
	*d = row
	return nil
}

// GetDocument returns version of the named document (0: the default
// version) and the document's head. An unknown name or version yields
// ErrNotFound.
func (s *Store) GetDocument(ctx context.Context, name string, version int) (Document, DocumentHead, error) {
	op := fmt.Sprintf("get document %s version %d", name, version)
	var (
		d    Document
		head DocumentHead
	)
	db := s.db.WithContext(ctx)
	if err := db.Where("name = ?", name).Take(&head).Error; err != nil {
		return Document{}, DocumentHead{}, classify(op, err)
	}
	if version == 0 {
		version = head.DefaultVersion
	}
	if err := db.Where("name = ? AND version = ?", name, version).Take(&d).Error; err != nil {
		return Document{}, DocumentHead{}, classify(op, err)
	}
	return d, head, nil
}

// SetDefaultDocumentVersion makes version the named document's default. An
// unknown name or version yields ErrNotFound.
func (s *Store) SetDefaultDocumentVersion(ctx context.Context, name string, version int) error {
	op := fmt.Sprintf("set default version of document %s to %d", name, version)
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Document{}).Where("name = ? AND version = ?", name, version).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		res := tx.Model(&DocumentHead{}).Where("name = ?", name).
			Updates(map[string]any{"default_version": version})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
	return classify(op, err)
}

// ListDocuments returns one page of the document heads matching f, by name,
// and the token of the next page ("" on the last page). NamePrefix matches
// case-sensitively and literally on both databases: it is compared with
// SUBSTR rather than LIKE, which is case-insensitive on SQLite and would
// need its wildcards escaped. A malformed NextToken yields
// ErrInvalidArgument.
func (s *Store) ListDocuments(ctx context.Context, f DocumentFilter) ([]DocumentHead, string, error) {
	const op = "list documents"
	limit := pageSize(f.MaxResults)
	q := s.db.WithContext(ctx).Model(&DocumentHead{})
	if f.DocumentType != "" {
		q = q.Where("document_type = ?", f.DocumentType)
	}
	if f.NamePrefix != "" {
		// SUBSTR counts characters on both databases.
		q = q.Where("SUBSTR(name, 1, ?) = ?", utf8.RuneCountInString(f.NamePrefix), f.NamePrefix)
	}
	if f.NextToken != "" {
		after, err := decodeToken(f.NextToken)
		if err != nil {
			return nil, "", classify(op, err)
		}
		q = q.Where("name > ?", after)
	}
	var heads []DocumentHead
	if err := q.Order("name").Limit(limit + 1).Find(&heads).Error; err != nil {
		return nil, "", classify(op, err)
	}
	next := ""
	if len(heads) > limit {
		heads = heads[:limit]
		next = encodeToken(heads[limit-1].Name)
	}
	return heads, next, nil
}

// DocumentVersions returns every version of the named document, oldest
// first, without their Content. An unknown name yields ErrNotFound.
func (s *Store) DocumentVersions(ctx context.Context, name string) ([]Document, error) {
	op := fmt.Sprintf("list versions of document %s", name)
	var ds []Document
	err := s.db.WithContext(ctx).Select(documentColumnsNoContent).
		Where("name = ?", name).Order("version").Find(&ds).Error
	if err != nil {
		return nil, classify(op, err)
	}
	if len(ds) == 0 {
		return nil, classify(op, ErrNotFound)
	}
	return ds, nil
}

// DeleteDocument deletes one version of the named document, or, with
// version 0, every version and the head. The default version cannot be
// deleted on its own (ErrInvalidArgument); when the latest version is
// deleted, the highest remaining one becomes the latest, so its number is
// given again by the next UpdateDocument. An unknown name or version yields
// ErrNotFound.
func (s *Store) DeleteDocument(ctx context.Context, name string, version int) error {
	op := fmt.Sprintf("delete document %s version %d", name, version)
	if version == 0 {
		op = fmt.Sprintf("delete document %s", name)
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var head DocumentHead
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("name = ?", name).Take(&head).Error; err != nil {
			return err
		}
		if version == 0 {
			if err := tx.Where("name = ?", name).Delete(&Document{}).Error; err != nil {
				return err
			}
			return tx.Where("name = ?", name).Delete(&DocumentHead{}).Error
		}
		if version == head.DefaultVersion {
			return invalid("cannot delete the default version (%d) of document %s", version, name)
		}
		res := tx.Where("name = ? AND version = ?", name, version).Delete(&Document{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if version != head.LatestVersion {
			return nil
		}
		var latest int
		if err := tx.Model(&Document{}).Where("name = ?", name).
			Select("COALESCE(MAX(version), 0)").Scan(&latest).Error; err != nil {
			return err
		}
		return tx.Model(&DocumentHead{}).Where("name = ?", name).
			Updates(map[string]any{"latest_version": latest}).Error
	})
	return classify(op, err)
}
