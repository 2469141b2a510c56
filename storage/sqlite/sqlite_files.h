// Internal to the SQLite backend: which files a database is made of (its folder, the file, its
// -wal and -shm) and whether the ones a connection has open are still the ones at the configured
// path. SQLite keeps using a file it has open after it was unlinked or renamed, so a removed
// folder or WAL goes unnoticed by SQLite itself; the writer compares identities (device and
// inode) instead (SPEC §10 "Storage faults"). POSIX stat(2) only; no SQLite here.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace b24es::sqlite {

// What stat(2) says a path is. Equal identities are the same file, whatever its name.
struct FileId {
  dev_t device = 0;
  ino_t inode = 0;
  bool operator==(const FileId& o) const { return device == o.device && inode == o.inode; }
  bool operator!=(const FileId& o) const { return !(*this == o); }
};

// The identity of what `path` names now; nullopt when nothing is there (or it cannot be read).
std::optional<FileId> identify(const std::string& path);

// The folder, file, WAL and shared-memory index of the database at `path`, as they were when
// recorded. Plain value; not thread-safe to share while one thread records into it.
struct DatabaseFiles {
  std::string path;  // the configured database path
  std::optional<FileId> folder, file, wal, shm;

  // Identifies the four files of `path` now. Call after the connection has opened its WAL (a
  // first read does), so that the -wal and -shm recorded are the ones it uses.
  static DatabaseFiles record(const std::string& path);
  // Empty when every file recorded is still the one at its path; otherwise one sentence saying
  // what changed first ("the database folder /x was removed"). Four stat(2) calls, no lock.
  std::string changed() const;
};

// The folder of a file path ("." for a bare file name).
std::string folderOf(const std::string& path);

// Creates `folder` and every missing parent with mode 0700 (mkdir(2) with that mode, so no
// folder exists with a wider mode even for a moment; an existing folder keeps its mode). Throws
// std::runtime_error naming the folder that could not be created.
void createFolders(const std::string& folder);

// fsync(2) of a folder, so that a rename or a new file in it survives a power cut. Throws
// std::runtime_error.
void syncFolder(const std::string& folder);

}  // namespace b24es::sqlite
